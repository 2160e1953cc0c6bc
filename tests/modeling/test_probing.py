"""ntps.modeling.probing: one row of probe metrics per hidden state, and a probe that did not
converge reported once, in words, with what to change."""

from __future__ import annotations

import logging

import numpy as np

from ntps.modeling.hidden_states import PooledFeatures
from ntps.modeling.probing import probe_metrics_table

SETTINGS = {
    "ols_ridge": 0.0,
    "logistic": {"inverse_regularization": 1.0, "max_iterations": 1000, "tolerance": 1e-4, "seed": 0},
    "h_score_rcond": 1e-10,
}


def pooled(seed: int = 0) -> PooledFeatures:
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1, 2], 40)
    features = rng.normal(size=(len(labels), 2, 6)) + labels[:, None, None]
    splits = np.where(np.arange(len(labels)) < 90, "train", "test")
    return PooledFeatures(features.astype(np.float32), np.array([3, 5]), labels, splits)


def test_one_row_per_hidden_state_and_a_converged_probe_says_nothing(caplog):
    with caplog.at_level(logging.WARNING):
        table = probe_metrics_table(pooled(), SETTINGS)
    assert table["hidden_state"].tolist() == [3, 5]
    assert (table[["n_train", "n_test", "n_classes"]].to_numpy() == [90, 30, 3]).all()
    assert table["logistic_converged"].all() and not caplog.records


def test_a_probe_that_did_not_converge_is_reported_once_with_what_to_change(caplog):
    settings = {**SETTINGS, "logistic": {**SETTINGS["logistic"], "max_iterations": 1}}
    with caplog.at_level(logging.WARNING):
        table = probe_metrics_table(pooled(), settings)
    assert not table["logistic_converged"].any()
    (record,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    message = record.getMessage()
    assert "hidden state(s) [3, 5]" in message and "probes.logistic.max_iterations" in message

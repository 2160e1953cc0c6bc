"""ntps.modeling.probing: one row of probe metrics per hidden state, and a probe that did not
converge reported once, in words, with what to change."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ntps.core.errors import NtpsInputError
from ntps.core.probes import log_maximum_evidence
from ntps.modeling.hidden_states import PooledFeatures
from ntps.modeling.probing import layer_probe_table, probe_metrics_table

SETTINGS = {
    "hidden_states": "all",
    "ols_ridge": 0.0,
    "logistic": {"inverse_regularization": 1.0, "max_iterations": 1000, "tolerance": 1e-4, "seed": 0},
    "h_score_rcond": 1e-10,
    "reference_scores": {"folds": 3, "knn_neighbors": [1, 5]},
}
LAYER_SETTINGS = {"ridge_strengths": [1e-3, 1e-1, 10.0, 1e3], "interval_level": 0.95}


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
    assert table["logistic_converged"].all() and table["logistic_cv_converged"].all() and not caplog.records
    assert (table["majority_rate"] == 1 / 3).all() and np.allclose(table["log_n_train"], np.log(90))
    assert table[["knn_test_accuracy", "logistic_cv_accuracy"]].stack().between(0, 1).all()
    assert set(table["knn_neighbors"]) <= {1, 5}


def test_a_probe_that_did_not_converge_is_reported_once_with_what_to_change(caplog):
    settings = {**SETTINGS, "logistic": {**SETTINGS["logistic"], "max_iterations": 1}}
    with caplog.at_level(logging.WARNING):
        table = probe_metrics_table(pooled(), settings)
    assert not table["logistic_converged"].any()
    (record,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    message = record.getMessage()
    assert "hidden state(s) [3, 5]" in message and "probes.logistic.max_iterations" in message


def test_only_the_chosen_pooled_hidden_states_are_probed_and_unpooled_ones_are_refused():
    assert probe_metrics_table(pooled(), {**SETTINGS, "hidden_states": [-1]})["hidden_state"].tolist() == [5]
    assert probe_metrics_table(pooled(), {**SETTINGS, "hidden_states": [3]})["hidden_state"].tolist() == [3]
    with pytest.raises(NtpsInputError, match=r"hidden state\(s\) \[4\], which were not pooled"):
        probe_metrics_table(pooled(), {**SETTINGS, "hidden_states": [4]})


def layered(seed: int = 0, layers: int = 4, signal_layer: int = 2) -> PooledFeatures:
    """Pooled features whose training texts carry their label in one hidden state only."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1, 2], 50)
    features = rng.normal(size=(len(labels), layers, 8))
    features[:, signal_layer, :3] += 2.0 * np.eye(3)[labels]
    splits = np.where(np.arange(len(labels)) < 120, "train", "test")
    return PooledFeatures(features.astype(np.float32), np.arange(layers), labels, splits)


def test_the_layer_probe_finds_the_layer_that_carries_the_label():
    table = layer_probe_table(layered(), LAYER_SETTINGS, SETTINGS["logistic"])
    assert table["hidden_state"].tolist() == [0, 1, 2, 3]
    assert table.loc[table["best_layer"], "hidden_state"].tolist() == [2]
    best = table.set_index("hidden_state").loc[2]
    assert best["loo_accuracy"] > 0.8 and best["test_accuracy"] > 0.8
    others = table[table["hidden_state"] != 2]
    assert (others["loo_accuracy"] < 0.6).all()
    assert (table[["n_train", "n_test"]].to_numpy() == [120, 30]).all()
    # Two halves of the 30 held-out texts, 15 each, make up the held-out accuracy.
    halves = (table["test_accuracy_even"] + table["test_accuracy_odd"]) / 2
    np.testing.assert_allclose(halves, table["test_accuracy"], atol=1e-12)
    assert (table["majority_rate"] == 1 / 3).all() and set(table["ridge_strength"]) <= set(LAYER_SETTINGS["ridge_strengths"])
    # The label-aware selectors rank the signal layer first; LogME there is the one of its raw features.
    for selector in ("h_score", "h_score_shrunk", "logme"):
        assert table[selector].idxmax() == 2, selector
    train = layered().split("train", 2)
    assert best["logme"] == pytest.approx(log_maximum_evidence(*train).score, rel=1e-12)
    # The logistic probe checks the best layer and the final block only, with probe_metrics_table's result.
    checked = table.dropna(subset=["logistic_test_accuracy"])
    assert checked["hidden_state"].tolist() == [2, 3] and checked["logistic_converged"].all()
    reference = probe_metrics_table(layered(), {**SETTINGS, "hidden_states": [2, 3]})
    np.testing.assert_array_equal(checked["logistic_test_accuracy"], reference["logistic_test_accuracy"])
    # Where probe_metrics_table already probed a hidden state (the final block, by default), its fit is reused.
    final_block = reference[reference["hidden_state"] == 3].assign(logistic_test_accuracy=0.123)
    reused = layer_probe_table(layered(), LAYER_SETTINGS, SETTINGS["logistic"], final_block).set_index("hidden_state")
    assert reused.loc[3, "logistic_test_accuracy"] == 0.123
    assert reused.loc[2, "logistic_test_accuracy"] == reference.loc[0, "logistic_test_accuracy"]


def test_no_held_out_label_or_feature_moves_the_choice_or_the_cross_validated_figures():
    """A signal planted in the held-out texts only, and their labels scrambled, change the held-out
    columns and nothing chosen or cross-validated on the training texts."""
    honest = layered()
    planted = layered()
    test = planted.splits == "test"
    planted.label_ids[test] = np.random.default_rng(1).permutation(planted.label_ids[test])
    planted.features[test, 0, :3] += 5.0 * np.eye(3)[planted.label_ids[test]]
    before, after = (layer_probe_table(features, LAYER_SETTINGS, SETTINGS["logistic"]) for features in (honest, planted))
    training_columns = [
        "hidden_state", "n_train", "majority_rate", "ridge_strength", "loo_accuracy", "loo_low", "loo_high",
        "h_score", "h_score_shrunk", "effective_rank", "logme",
    ]  # fmt: skip
    assert before[training_columns + ["best_layer"]].equals(after[training_columns + ["best_layer"]])
    assert after.loc[0, "test_accuracy"] > before.loc[0, "test_accuracy"] + 0.2

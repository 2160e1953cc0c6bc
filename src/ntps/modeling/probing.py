"""Probe metrics of one model x dataset from its pooled features: the downstream performance NTPS
is meant to predict, and the peer transferability scores it is compared with."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ntps.core.errors import NtpsInputError
from ntps.core.probes import fit_least_squares_probe, fit_logistic_probe, h_score, log_maximum_evidence, one_hot
from ntps.modeling.hidden_states import PooledFeatures

logger = logging.getLogger(__name__)


def probe_metrics_table(pooled: PooledFeatures, settings: dict[str, Any]) -> pd.DataFrame:
    """One row per pooled hidden state.

    Columns: hidden_state, n_train, n_test, n_classes, ols_training_mse, ols_test_mse,
    logistic_train_accuracy, logistic_test_accuracy, logistic_iterations, logistic_converged,
    logme, h_score. The OLS probe, LogME and H-score see the training texts only (the split NTPS
    is computed on); the held-out numbers use the probes fitted there.
    """
    n_classes = int(pooled.label_ids.max()) + 1
    logistic = settings["logistic"]
    rows = []
    for hidden_state in tqdm(pooled.hidden_states.tolist(), desc="probes", unit="hidden state"):
        train_features, train_labels = pooled.split("train", hidden_state)
        test_features, test_labels = pooled.split("test", hidden_state)
        if len(train_labels) < 2:
            raise NtpsInputError(f"probes need at least 2 training texts, got {len(train_labels)}")
        least_squares = fit_least_squares_probe(train_features, one_hot(train_labels, n_classes), settings["ols_ridge"])
        test_mse = float("nan")
        if len(test_labels):
            residuals = one_hot(test_labels, n_classes) - least_squares.predict(test_features)
            test_mse = float((residuals**2).sum() / len(test_labels))
        logistic_result = fit_logistic_probe(
            train_features,
            train_labels,
            test_features,
            test_labels,
            inverse_regularization=logistic["inverse_regularization"],
            max_iterations=logistic["max_iterations"],
            tolerance=logistic["tolerance"],
            seed=logistic["seed"],
        )
        rows.append(
            {
                "hidden_state": hidden_state,
                "n_train": len(train_labels),
                "n_test": len(test_labels),
                "n_classes": n_classes,
                "ols_training_mse": least_squares.training_mse,
                "ols_test_mse": test_mse,
                "logistic_train_accuracy": logistic_result.train_accuracy,
                "logistic_test_accuracy": logistic_result.test_accuracy,
                "logistic_iterations": logistic_result.n_iterations,
                "logistic_converged": logistic_result.converged,
                "logme": log_maximum_evidence(train_features, train_labels).score,
                "h_score": h_score(train_features, train_labels, rcond=settings["h_score_rcond"]),
            }
        )
    table = pd.DataFrame(rows)
    not_converged = table.loc[~table["logistic_converged"], "hidden_state"].tolist()
    if not_converged:
        logger.warning(
            "the logistic probe did not converge in %d saga iterations on hidden state(s) %s: its accuracies "
            "there may be too low; raise probes.logistic.max_iterations or probes.logistic.tolerance "
            "(the table's logistic_converged column marks these rows)",
            logistic["max_iterations"],
            not_converged,
        )
    return table

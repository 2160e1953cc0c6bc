"""Probe metrics of one model x dataset from its pooled features: the downstream performance NTPS
is meant to predict, and the peer transferability scores it is compared with."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ntps.core.errors import NtpsInputError
from ntps.core.layer_probe import (
    CenteredFeatures,
    accuracy_interval,
    effective_rank,
    h_scores,
    ridge_leave_one_out,
    ridge_test_predictions,
    standardized,
)
from ntps.core.probes import (
    cross_validated_logistic_accuracy,
    fit_least_squares_probe,
    fit_logistic_probe,
    h_score,
    knn_accuracy,
    log_maximum_evidence,
    majority_rate,
    one_hot,
)
from ntps.modeling.hidden_states import PooledFeatures, resolve_hidden_states

logger = logging.getLogger(__name__)


def logistic_options(logistic: dict[str, Any]) -> dict[str, Any]:
    """The `probes.logistic` settings as the logistic probes' keyword arguments."""
    return {
        "inverse_regularization": logistic["inverse_regularization"],
        "max_iterations": logistic["max_iterations"],
        "tolerance": logistic["tolerance"],
        "seed": logistic["seed"],
    }


def probed_hidden_states(pooled: PooledFeatures, selection: str | list[int]) -> list[int]:
    """The pooled hidden states to probe: "all" of them, or those of a list of indices (-1 the last
    pooled one, the final block's when it was pooled), each of which must have been pooled."""
    n_hidden_states = int(pooled.hidden_states.max()) + 1
    if selection == "all":
        return pooled.hidden_states.tolist()
    wanted = resolve_hidden_states(selection, n_hidden_states).tolist()
    missing = sorted(set(wanted) - set(pooled.hidden_states.tolist()))
    if missing:
        raise NtpsInputError(
            f"probes.hidden_states asks for hidden state(s) {missing}, which were not pooled "
            f"(pooled: {pooled.hidden_states.tolist()}); add them to forward_pass.pooled_hidden_states"
        )
    return wanted


def probe_metrics_table(pooled: PooledFeatures, settings: dict[str, Any]) -> pd.DataFrame:
    """One row per probed hidden state (settings["hidden_states"], see probed_hidden_states).

    Columns: hidden_state, n_train, n_test, n_classes, ols_training_mse, ols_test_mse,
    logistic_train_accuracy, logistic_test_accuracy, logistic_iterations, logistic_converged,
    logme, h_score, and the reference scores: majority_rate, log_n_train, knn_test_accuracy (with
    knn_neighbors, the k chosen), logistic_cv_accuracy (with logistic_cv_converged). The OLS probe,
    LogME, H-score and the cross-validation see the training texts only (the split NTPS is computed
    on); the held-out numbers use the probes fitted there.
    """
    n_classes = int(pooled.label_ids.max()) + 1
    logistic = settings["logistic"]
    reference = settings["reference_scores"]
    rows = []
    for hidden_state in tqdm(probed_hidden_states(pooled, settings["hidden_states"]), desc="probes", unit="hidden state"):
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
            **logistic_options(logistic),
        )
        knn = knn_accuracy(
            train_features,
            train_labels,
            test_features,
            test_labels,
            neighbors=reference["knn_neighbors"],
            folds=reference["folds"],
            seed=logistic["seed"],
        )
        cross_validated = cross_validated_logistic_accuracy(
            train_features,
            train_labels,
            folds=reference["folds"],
            **logistic_options(logistic),
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
                "majority_rate": majority_rate(train_labels),
                "log_n_train": float(np.log(len(train_labels))),
                "knn_test_accuracy": knn.test_accuracy,
                "knn_neighbors": knn.n_neighbors,
                "logistic_cv_accuracy": cross_validated.accuracy,
                "logistic_cv_converged": cross_validated.converged,
            }
        )
    table = pd.DataFrame(rows)
    not_converged = table.loc[~(table["logistic_converged"] & table["logistic_cv_converged"]), "hidden_state"].tolist()
    if not_converged:
        logger.warning(
            "the logistic probe did not converge in %d saga iterations on hidden state(s) %s: its accuracies "
            "there may be too low; raise probes.logistic.max_iterations or probes.logistic.tolerance "
            "(the table's logistic_converged and logistic_cv_converged columns mark these rows)",
            logistic["max_iterations"],
            not_converged,
        )
    return table


def layer_probe_table(
    pooled: PooledFeatures,
    settings: dict[str, Any],
    logistic: dict[str, Any],
    probe_metrics: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """How well each pooled hidden state serves the task, from the training texts alone, with the
    held-out texts only checking the answer: one row per pooled hidden state.

    Columns: hidden_state, n_train, n_test, majority_rate (the training texts' majority-class share,
    chance), majority_test_accuracy (always predicting that class on the held-out texts), ridge_strength
    (chosen by leave-one-out on the training texts, relative strengths settings["ridge_strengths"]
    times CenteredFeatures.strength_scale), loo_accuracy with loo_low / loo_high (its
    Wilson interval at settings["interval_level"]), test_accuracy with test_low / test_high (the
    ridge classifier at that strength, fitted on every training text; test_accuracy_even and
    test_accuracy_odd on the held-out texts of even and odd position, two halves that let a study choose
    a layer in hindsight on one and measure it on the other), and best_layer (True on the
    first hidden state of highest leave-one-out accuracy), and per-layer selectors from the same
    decomposition: h_score, h_score_shrunk and the label-free effective_rank (RankMe), and logme (on
    the raw features, as LogME is defined). Features are standardized on the training texts.

    At the best layer and at the final block only, the logistic probe of probe_metrics_table (with
    `logistic`'s settings) checks the cheap one: logistic_test_accuracy, logistic_converged (NaN
    elsewhere), taken from probe_metrics (probe_metrics_table's rows, fitted alike) where it probed
    that hidden state and fitted here otherwise.
    """
    level = settings["interval_level"]
    rows = []
    for hidden_state in tqdm(pooled.hidden_states.tolist(), desc="layer probes", unit="hidden state"):
        train, train_labels = pooled.split("train", hidden_state)
        test, test_labels = pooled.split("test", hidden_state)
        logme = log_maximum_evidence(train, train_labels).score
        train, test = standardized(train, test)
        features = CenteredFeatures.of(train)
        scale = features.strength_scale()
        loo = ridge_leave_one_out(features, train_labels, np.asarray(settings["ridge_strengths"]) * scale)
        majority = np.bincount(train_labels).argmax()
        row = {
            "hidden_state": hidden_state,
            "n_train": len(train_labels),
            "n_test": len(test_labels),
            "majority_rate": majority_rate(train_labels),
            "majority_test_accuracy": float(np.mean(test_labels == majority)) if len(test_labels) else float("nan"),
            "ridge_strength": loo.best_alpha / scale,
            "loo_accuracy": loo.accuracy,
        }
        row["loo_low"], row["loo_high"] = accuracy_interval(
            round(loo.accuracy * len(train_labels)), len(train_labels), level
        )
        for column in ("test_accuracy", "test_low", "test_high", "test_accuracy_even", "test_accuracy_odd"):
            row[column] = float("nan")
        if len(test_labels) >= 2:
            correct = ridge_test_predictions(features, train_labels, test, loo.best_alpha) == test_labels
            row["test_accuracy"] = float(correct.mean())
            row["test_low"], row["test_high"] = accuracy_interval(int(correct.sum()), len(test_labels), level)
            row["test_accuracy_even"], row["test_accuracy_odd"] = float(correct[::2].mean()), float(correct[1::2].mean())
        row["h_score"], row["h_score_shrunk"] = h_scores(features, train_labels)
        row["effective_rank"] = effective_rank(features)
        row["logme"] = logme
        rows.append(row)
    table = pd.DataFrame(rows)
    table["best_layer"] = table.index == table["loo_accuracy"].idxmax()
    table["logistic_test_accuracy"] = float("nan")
    table["logistic_converged"] = pd.array([pd.NA] * len(table), dtype="boolean")
    checked = table.loc[table["best_layer"] | (table["hidden_state"] == table["hidden_state"].max())]
    fitted = pd.DataFrame(columns=["hidden_state"]) if probe_metrics is None else probe_metrics
    fitted = fitted.set_index("hidden_state")
    for index, hidden_state in zip(checked.index, checked["hidden_state"]):
        if hidden_state in fitted.index:
            table.loc[index, ["logistic_test_accuracy", "logistic_converged"]] = fitted.loc[
                hidden_state, ["logistic_test_accuracy", "logistic_converged"]
            ].to_list()
            continue
        train, train_labels = pooled.split("train", hidden_state)
        test, test_labels = pooled.split("test", hidden_state)
        result = fit_logistic_probe(
            train,
            train_labels,
            test,
            test_labels,
            **logistic_options(logistic),
        )
        table.loc[index, ["logistic_test_accuracy", "logistic_converged"]] = [result.test_accuracy, result.converged]
    return table

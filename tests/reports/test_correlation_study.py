"""ntps.reports.correlation_study: the NTPS-probe correlation summary and its report."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ntps.core.correlation import STATISTICS
from ntps.reports.correlation_study import (
    REFERENCE_SCORES,
    TARGET_DIRECTIONS,
    baseline_verdict,
    correlation_summary,
    markdown_report,
)


def synthetic_tables(n_datasets: int, seed: int):
    """An NTPS table where layer 1 at k=2 tracks probe accuracy, and matching probe metrics."""
    rng = np.random.default_rng(seed)
    accuracy = rng.uniform(0.5, 1.0, size=n_datasets)
    rows, probes = [], []
    for index in range(n_datasets):
        dataset = f"set{index}"
        for variant, layer, k in itertools.product(("paper", "signal"), range(3), range(1, 5)):
            value = accuracy[index] if (layer, k) == (1, 2) else rng.uniform()
            rows.append(
                {"model": "m", "dataset": dataset, "layer": layer, "k": k, "k_fraction": k / 4, "on_paper_grid": True}
                | {"variant": variant, "signal_rank": 1, "ntps": value}
            )
        probes.append(
            {"model": "m", "dataset": dataset, "hidden_state": 2, "ols_training_mse": 1 - accuracy[index]}
            | {"ols_test_mse": 1.1 - accuracy[index]}
            | {"logistic_train_accuracy": accuracy[index], "logistic_test_accuracy": accuracy[index] - 0.1}
            | {"logme": rng.normal(), "h_score": rng.uniform(), "n_classes": int(rng.integers(2, 9))}
            | {"majority_rate": rng.uniform(0.2, 0.6), "log_n_train": np.log(100.0)}
            | {"knn_test_accuracy": accuracy[index] - 0.2, "logistic_cv_accuracy": rng.uniform()}
        )
    return pd.DataFrame(rows), pd.DataFrame(probes)


SETTINGS = {
    "k_search": "paper_grid",
    "exclude_final_hidden_state": True,
    "probe_hidden_state": -1,
    "bootstrap_resamples": 200,
    "permutations": 720,
    "confidence": 0.95,
    "seed": 0,
}


def test_correlation_summary_finds_a_planted_configuration_and_reports_every_score():
    ntps_table, probe_metrics = synthetic_tables(6, seed=13)
    summary = correlation_summary(ntps_table, probe_metrics, SETTINGS)
    assert set(summary["score"]) == {"ntps_paper", "ntps_signal", *REFERENCE_SCORES}
    assert set(summary["statistic"]) == set(STATISTICS)
    assert len(summary) == len(TARGET_DIRECTIONS) * len(STATISTICS) * (2 * 2 + len(REFERENCE_SCORES))
    best = summary[(summary["selection"] == "best_in_sample") & (summary["target"] == "ols_training_mse")]
    assert (best["layer"] == 1).all() and (best["k"] == 2).all() and np.allclose(best["r"], -1)
    honest = summary[summary["selection"] == "leave_one_dataset_out"]
    np.testing.assert_allclose(honest["r"], honest["expected_sign"])
    assert summary["permutation"].eq("exact 720").all()
    assert (honest["p_value"] < 0.05).all() and (best["p_value"] < 0.05).all()
    # n_classes enters negated (fewer classes, an easier task); a constant score ranks nothing.
    references = summary[summary["selection"] == "none"].set_index(["statistic", "target", "score"])
    assert (references.xs("n_classes", level="score")["score_sign"] == -1).all()
    assert references.xs("log_n_train", level="score")["r"].isna().all()
    assert references.loc[("kendall", "logistic_test_accuracy", "knn_test_accuracy"), "r"] == pytest.approx(1)
    report = markdown_report(summary, probe_metrics)
    assert "| ols_training_mse | ntps_paper | best_in_sample | -1.000 [" in report and "@L1/k2" in report
    assert "| Spearman r | Kendall tau | weighted tau |" in report
    assert "Kendall tau: beat the best trivial baseline" in report and "**knn_test_accuracy** by" in report
    # The final layer (2) is excluded from the search, as the paper scans through the penultimate one.
    assert not (summary["layer"] == 2).any()


def test_too_few_datasets_give_an_empty_summary_and_a_report_that_says_so():
    ntps_table, probe_metrics = synthetic_tables(2, seed=14)
    summary = correlation_summary(ntps_table, probe_metrics, SETTINGS)
    assert summary.empty
    assert "3 or more datasets" in markdown_report(summary, probe_metrics)


def verdict_rows(aligned: dict[str, float]) -> pd.DataFrame:
    """Summary rows of one model, target (expected sign -1) and statistic with these aligned r."""
    rows = [
        {"model": "m", "target": "t", "statistic": "kendall", "expected_sign": -1, "score": score}
        | {"selection": "leave_one_dataset_out" if score.startswith("ntps_") else "none", "r": -value}
        for score, value in aligned.items()
    ]
    rows.append(rows[0] | {"selection": "best_in_sample", "r": -1.0})  # in-sample numbers never count
    return pd.DataFrame(rows)


def test_the_verdict_names_the_scores_that_beat_every_trivial_baseline_out_of_sample_and_by_how_much():
    verdict = baseline_verdict(verdict_rows({"ntps_paper": 0.5, "logme": 0.2, "majority_rate": 0.3, "n_classes": 0.1}))
    assert verdict == (
        "Kendall tau: beat the best trivial baseline, majority_rate (+0.300) out of sample: **ntps_paper** by +0.200."
    )
    verdict = baseline_verdict(verdict_rows({"ntps_paper": 0.2, "knn_test_accuracy": 0.6, "n_classes": 0.4}))
    assert verdict.endswith("**knn_test_accuracy** by +0.200; no NTPS variant did.")
    nothing = baseline_verdict(verdict_rows({"ntps_paper": 0.1, "logme": float("nan"), "log_n_train": 0.7}))
    assert nothing == "Kendall tau: no score beat the best trivial baseline, log_n_train (+0.700) out of sample."


def test_label_views_of_one_corpus_are_also_held_out_together():
    ntps_table, probe_metrics = synthetic_tables(6, seed=13)
    corpora = {"set0": "a", "set1": "a", "set2": "b", "set3": "c", "set4": "d", "set5": "d"}
    registry = {name: {"corpus": corpus} for name, corpus in corpora.items()}
    summary = correlation_summary(ntps_table, probe_metrics, {**SETTINGS, "statistics": ["kendall"]}, registry)
    by_corpus = summary[summary["selection"] == "leave_one_corpus_out"]
    assert set(by_corpus["score"]) == {"ntps_paper", "ntps_signal"} and len(by_corpus) == 2 * len(TARGET_DIRECTIONS)
    # The planted configuration is chosen without any corpus, so the out-of-corpus scores rank perfectly.
    np.testing.assert_allclose(by_corpus["r"], by_corpus["expected_sign"])
    report = markdown_report(summary, probe_metrics)
    assert "| logistic_test_accuracy | ntps_paper | leave_one_corpus_out |" in report
    # Every dataset its own corpus: nothing to add.
    alone = {name: {"corpus": name} for name in corpora}
    assert "leave_one_corpus_out" not in set(correlation_summary(ntps_table, probe_metrics, SETTINGS, alone)["selection"])

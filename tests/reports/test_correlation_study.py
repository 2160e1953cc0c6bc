"""ntps.reports.correlation_study: the NTPS-probe correlation summary and its report."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ntps.reports.correlation_study import correlation_summary, markdown_report


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
            | {"logistic_train_accuracy": accuracy[index], "logistic_test_accuracy": accuracy[index] - 0.1}
            | {"logme": rng.normal(), "h_score": rng.uniform()}
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
    assert set(summary["score"]) == {"ntps_paper", "ntps_signal", "logme", "h_score"}
    assert len(summary) == 3 * (2 * 2 + 2)
    best = summary[(summary["selection"] == "best_in_sample") & (summary["target"] == "ols_training_mse")]
    assert (best["layer"] == 1).all() and (best["k"] == 2).all() and np.allclose(best["spearman_r"], -1)
    honest = summary[summary["selection"] == "leave_one_dataset_out"]
    np.testing.assert_allclose(honest["spearman_r"], honest["expected_sign"])
    assert summary["permutation"].eq("exact 720").all()
    assert (honest["p_value"] < 0.05).all() and (best["p_value"] < 0.05).all()
    report = markdown_report(summary, probe_metrics)
    assert "| ols_training_mse | ntps_paper | best_in_sample | -1.000 |" in report
    # The final layer (2) is excluded from the search, as the paper scans through the penultimate one.
    assert not (summary["layer"] == 2).any()


def test_too_few_datasets_give_an_empty_summary_and_a_report_that_says_so():
    ntps_table, probe_metrics = synthetic_tables(2, seed=14)
    summary = correlation_summary(ntps_table, probe_metrics, SETTINGS)
    assert summary.empty
    assert "3 or more datasets" in markdown_report(summary, probe_metrics)

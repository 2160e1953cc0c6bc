"""ntps.reports.lora_study: accuracy gains, NTPS change after LoRA and their correlation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from ntps.core.errors import NtpsInputError
from ntps.reports.lora_study import (
    NTPS_CHANGE_RESOLUTION,
    accuracy_gains,
    gain_correlation_summary,
    ntps_change_table,
    ntps_rose,
)


def test_reports_compute_the_gain_and_the_relative_ntps_change_and_refuse_unknown_pairs():
    probe = pd.DataFrame(
        {
            "model": "m",
            "dataset": ["a", "b", "c"],
            "hidden_state": 4,
            "logistic_test_accuracy": [0.5, 0.7, 0.9],
            "logme": [1.0, 2.0, 3.0],
            "h_score": [0.1, 0.2, 0.3],
        }
    )
    lora = pd.DataFrame(
        {
            "model": "m",
            "dataset": ["a", "b", "c"],
            "lora_test_accuracy": [0.9, 0.8, 0.95],
            "lora_train_accuracy": 1.0,
            "steps": 4,
        }
    )
    # Two layers per dataset; layer 2 is best on a and c, layer 4 (the final block) on b.
    layer_probes = pd.DataFrame(
        {
            "model": "m",
            "dataset": ["a", "a", "b", "b", "c", "c"],
            "hidden_state": [2, 4] * 3,
            "best_layer": [True, False, False, True, True, False],
            "logistic_test_accuracy": [0.6, 0.5, 0.65, 0.7, 0.92, 0.9],
        }
    )
    gains = accuracy_gains(lora, probe, layer_probes)
    np.testing.assert_allclose(gains["accuracy_gain"], [0.4, 0.1, 0.05])
    assert gains["best_layer"].tolist() == [2, 4, 2]
    np.testing.assert_allclose(gains["gain_over_best_layer"], [0.3, 0.1, 0.03])
    with pytest.raises(NtpsInputError, match=r"\('m', 'z'\)"):
        accuracy_gains(lora.assign(dataset=["a", "b", "z"]), probe, layer_probes)
    with pytest.raises(NtpsInputError, match="layer probe table"):
        accuracy_gains(lora, probe, layer_probes[layer_probes["dataset"] != "c"])

    # NTPS tables of 2 hidden states x d = 4: before, and after scaled up by 10 % everywhere.
    rows = [
        {"model": "m", "dataset": d, "layer": layer, "k": k, "k_fraction": k / 4, "on_paper_grid": True, "variant": v}
        for d in "abc"
        for layer in (0, 1)
        for k in (1, 2, 3, 4)
        for v in ("paper", "signal")
    ]
    # released_code rows sit at fractions f of a rank (3 here), with k = int(f rank).
    rows += [
        {"model": "m", "dataset": d, "layer": layer, "k": int(f * 3), "k_fraction": f, "on_paper_grid": True}
        | {"variant": "released_code"}
        for d in "abc"
        for layer in (0, 1)
        for f in (0.35, 0.55, 0.75)
    ]
    before = pd.DataFrame(rows).assign(ntps=lambda t: 0.1 + 0.1 * t["k"] + 0.01 * t["layer"])
    after = before.assign(ntps=before["ntps"] * 1.1)
    settings = {"k_search": "all", "exclude_final_hidden_state": False}
    change_all = ntps_change_table(before, after, settings, {"layer": -1, "k_fraction": 0.5})
    released = change_all[change_all["variant"] == "released_code"]
    assert len(released) == 3 and (released["k_fraction"] == 0.55).all() and (released["k"] == 1).all()
    np.testing.assert_allclose(released["relative_change_percent"], 10.0)
    change = change_all[change_all["variant"] != "released_code"]
    assert len(change) == 6 and (change["layer"] == 1).all() and (change["k"] == 2).all()
    np.testing.assert_allclose(change["ntps_before"], 0.31)
    np.testing.assert_allclose(change["relative_change_percent"], 10.0)
    np.testing.assert_allclose(change["grid_median_relative_change_percent"], 10.0)
    assert (change["grid_share_increased"] == 1).all()
    with pytest.raises(NtpsInputError, match="layer 2 does not exist"):
        ntps_change_table(before, after, settings, {"layer": 2, "k_fraction": 0.5})


def test_a_change_of_ntps_within_rounding_is_not_a_rise():
    """The embeddings' NTPS after LoRA differs from before only by the order of float64 sums: those
    configurations do not count as rises, the genuinely higher ones do."""
    rows = [
        {"model": "m", "dataset": "a", "layer": layer, "k": k, "k_fraction": k / 4, "on_paper_grid": True}
        | {"variant": "paper", "ntps": 0.1 * k}
        for layer in (0, 1)
        for k in (1, 2, 3, 4)
    ]
    before = pd.DataFrame(rows)
    after = before.assign(ntps=np.where(before["layer"] == 0, before["ntps"] + 1e-12, before["ntps"] + 0.01))
    settings = {"k_search": "all", "exclude_final_hidden_state": False}
    at_embeddings = ntps_change_table(before, after, settings, {"layer": 0, "k_fraction": 0.5})
    assert at_embeddings["grid_share_increased"].item() == 0.5
    assert not ntps_rose(at_embeddings["ntps_before"], at_embeddings["ntps_after"]).any()
    assert ntps_rose(0.2, 0.2 + 2 * NTPS_CHANGE_RESOLUTION) and not ntps_rose(0.2, 0.2 + NTPS_CHANGE_RESOLUTION / 2)


def test_ntps_that_ranks_datasets_by_gain_gets_r_minus_one_and_the_probe_baseline_its_own_r():
    datasets = [f"d{i}" for i in range(5)]
    gain = np.array([0.30, 0.05, 0.20, 0.10, 0.15])
    gains = pd.DataFrame(
        {
            "model": "m",
            "dataset": datasets,
            "accuracy_gain": gain,
            "gain_over_best_layer": gain - 0.01,
            "probe_test_accuracy": [0.6, 0.7, 0.8, 0.9, 0.5],
            "logme": 1.0,
            "h_score": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    rows = [
        {"model": "m", "dataset": d, "layer": layer, "k": 1, "k_fraction": 0.5, "on_paper_grid": True, "variant": v}
        for d in datasets
        for layer in (0, 1, 2)
        for v in ("paper", "signal")
    ]
    ntps = pd.DataFrame(rows)
    # Layer 1 ranks the datasets exactly against the gain; layers 0 and 2 are noise.
    noise = dict(zip(datasets, [0.3, 0.1, 0.5, 0.2, 0.4]))
    ntps["ntps"] = [
        1 - gain[datasets.index(row.dataset)] if row.layer == 1 else noise[row.dataset] for row in ntps.itertuples()
    ]
    settings = {
        "k_search": "all",
        "exclude_final_hidden_state": False,
        "bootstrap_resamples": 200,
        "permutations": 200,
        "confidence": 0.95,
        "seed": 0,
    }
    both = gain_correlation_summary(ntps, gains, settings)
    assert set(both["target"]) == {"accuracy_gain", "gain_over_best_layer"}
    summary = both[both["target"] == "accuracy_gain"].set_index(["statistic", "score", "selection"])
    for statistic, reference in (("spearman", scipy.stats.spearmanr), ("kendall", scipy.stats.kendalltau)):
        best = summary.loc[(statistic, "ntps_paper", "best_in_sample")]
        assert best["r"] == pytest.approx(-1.0) and best["layer"] == 1 and best["expected_sign"] == -1
        assert summary.loc[(statistic, "probe_test_accuracy", "none"), "r"] == pytest.approx(
            reference(gains["probe_test_accuracy"], gain).statistic
        )
        assert np.isnan(summary.loc[(statistic, "logme", "none"), "r"]), "a constant score ranks nothing"
    assert summary.loc[("weighted_tau", "ntps_paper", "best_in_sample"), "r"] == pytest.approx(-1.0)

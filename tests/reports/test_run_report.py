"""ntps.reports.run_report: layer choices, their cost and split-half regret on planted tables."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest

from ntps.reports.run_report import (
    FIXED_RULES,
    PROBE,
    layer_choices,
    lora_verdict,
    regret_summary,
    run_report,
    split_half_regret,
)


def planted_probes(best: int, tasks: tuple[str, ...] = ("a", "b", "c"), layers: int = 5) -> pd.DataFrame:
    """Layer probe tables where layer `best` is the best on the training texts and on both held-out halves."""
    rows = []
    for task in tasks:
        for layer in range(layers):
            accuracy = 0.9 if layer == best else 0.6 + 0.01 * layer
            rows.append(
                {
                    "model": "m",
                    "dataset": task,
                    "hidden_state": layer,
                    "loo_accuracy": accuracy,
                    "test_accuracy": accuracy,
                    "test_accuracy_even": accuracy,
                    "test_accuracy_odd": accuracy,
                    "majority_rate": 0.5,
                    "best_layer": layer == best,
                    "h_score": float(layer),
                    "h_score_shrunk": float(layers - layer),
                    "effective_rank": 1.0,
                    "logme": -abs(layer - 1.0),
                }
            )
    return pd.DataFrame(rows)


NO_NTPS = pd.DataFrame(
    columns=["model", "dataset", "variant", "hidden_state", "score", "null_mean", "null_sd", "above_null"]
)


def test_each_selector_chooses_its_maximum_and_pays_what_it_loses_held_out():
    choices = layer_choices(planted_probes(best=2), NO_NTPS).set_index(["dataset", "selector"])
    assert choices.loc[("a", PROBE), "hidden_state"] == 2 and choices.loc[("a", PROBE), "cost"] == 0
    assert choices.loc[("a", "H-score"), "hidden_state"] == 4  # its largest value
    assert choices.loc[("a", "shrunk H-score"), "hidden_state"] == 0
    assert choices.loc[("a", "LogME"), "hidden_state"] == 1
    assert choices.loc[("a", FIXED_RULES["final_block"]), "hidden_state"] == 4
    assert choices.loc[("a", FIXED_RULES["middle_layer"]), "hidden_state"] == 2
    assert choices.loc[("a", "H-score"), "cost"] == pytest.approx(0.9 - 0.64)
    assert (choices["regret"] >= choices["cost"] - 1e-12).all()


def test_split_half_regret_is_zero_for_the_planted_best_and_the_difference_elsewhere():
    probes = planted_probes(best=2)
    regrets = split_half_regret(probes, layer_choices(probes, NO_NTPS)).set_index(["dataset", "selector"])
    assert regrets.loc[("b", PROBE), "regret"] == pytest.approx(0.0)
    assert regrets.loc[("b", "shrunk H-score"), "regret"] == pytest.approx(0.9 - 0.60)
    assert (regrets["hindsight_optimism"] == 0).all()  # both halves agree: no optimism


def test_hindsight_optimism_measures_the_best_of_noisy_halves():
    probes = planted_probes(best=2, tasks=("a",))
    noisy = np.array([0.70, 0.62, 0.64, 0.66, 0.68])
    probes["test_accuracy_even"] = noisy
    probes["test_accuracy_odd"] = noisy[::-1]
    regrets = split_half_regret(probes, layer_choices(probes, NO_NTPS))
    # Chosen on the even half, layer 0 (0.70) scores 0.68 on the odd half; the other way, layer 4: 0.70 -> 0.68.
    assert regrets["hindsight_optimism"].iloc[0] == pytest.approx(0.02)


def test_the_regret_summary_ranks_selectors_with_an_interval_over_tasks():
    probes = planted_probes(best=2, tasks=("a", "b", "c", "d"))
    summary = regret_summary(split_half_regret(probes, layer_choices(probes, NO_NTPS))).set_index("selector")
    assert summary.loc[PROBE, "mean_regret"] == pytest.approx(0.0) and summary.loc[PROBE, "tasks"] == 4
    shrunk = summary.loc["shrunk H-score"]
    assert shrunk["low"] <= shrunk["mean_regret"] <= shrunk["high"] and shrunk["worst_regret"] == pytest.approx(0.3)
    assert summary.index[0] in {PROBE, FIXED_RULES["middle_layer"]}  # sorted by mean regret, best first


def test_the_lora_section_says_what_fine_tuning_added_and_whether_it_levelled_off():
    probes = planted_probes(best=2, tasks=("a",))
    probes["loo_low"], probes["loo_high"] = probes["loo_accuracy"] - 0.05, probes["loo_accuracy"] + 0.05
    probes["logistic_test_accuracy"] = np.where(probes["hidden_state"].isin([2, 4]), [0.85], np.nan)
    ntps_table = pd.DataFrame(
        columns=["model", "dataset", "variant", "layer", "ntps", "on_paper_grid", "null_p_value", "null_mean", "null_sd"]
    ).astype({"on_paper_grid": bool})
    gains = pd.DataFrame(
        [
            {
                "model": "m",
                "dataset": "a",
                "probe_test_accuracy": 0.80,
                "best_layer": 2,
                "best_layer_probe_accuracy": 0.85,
                "lora_test_accuracy": 0.88,
                "lora_train_accuracy": 0.95,
                "accuracy_gain": 0.08,
                "gain_over_best_layer": 0.03,
                "validation_accuracy": 0.86,
                "chance_accuracy": 0.55,
                "learned": True,
                "plateau_reached": True,
                "steps_to_plateau": 120,
                "steps": 180,
                "planned_steps": 180,
            }
        ]
    )
    report_html, markdown, _, _ = run_report(probes, ntps_table, None, gains, ["m: LogME ranked the gains."])
    sentence = (
        "LoRA reaches 0.88 held out, +0.03 over the logistic probe at layer 2 and +0.08 over the final block's "
        "(worth it); its validation accuracy levelled off by step 120 of 180."
    )
    assert sentence in markdown and html.escape(sentence) in report_html
    assert "## Is fine-tuning worth it?" in markdown and "m: LogME ranked the gains." in markdown
    assert "id='lora'" in report_html
    stopped_row = gains.iloc[0].copy()
    stopped_row["steps"], stopped_row["planned_steps"] = 150, 183
    assert "levelled off by step 120; training stopped at step 150 of the 183 planned." in lora_verdict(stopped_row)
    stalled_row = gains.iloc[0].copy()
    stalled_row["plateau_reached"], stalled_row["gain_over_best_layer"] = False, -0.01
    stalled = lora_verdict(stalled_row)
    assert "not worth it here" in stalled and "had not levelled off after 180 steps" in stalled
    collapsed_row = gains.iloc[0].copy()
    collapsed_row["learned"], collapsed_row["validation_accuracy"], collapsed_row["lora_train_accuracy"] = False, 0.57, 0.55
    collapsed = lora_verdict(collapsed_row)
    assert collapsed.startswith("LoRA is not clearly above chance: its validation accuracy, 0.57, is within two standard")
    assert "(0.55)" in collapsed and "diverged or collapsed" in collapsed and "worth it" not in collapsed
    collapsed_row["lora_train_accuracy"] = 0.80  # fits its training texts, but not beyond chance on new ones
    assert "does not carry to new texts" in lora_verdict(collapsed_row)
    without = run_report(probes, ntps_table)[1]
    assert "Is fine-tuning worth it?" not in without

"""Is fine-tuning worth it? The tables behind the paper's Figure 3 (NTPS against the accuracy LoRA
adds over the linear probe), Table 2 (NTPS after LoRA) and Table 1 (linear probe against training
from scratch), with the honest numbers next to the paper's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ntps.core.errors import NtpsInputError
from ntps.core.ntps import check_k_fractions, scored_variants
from ntps.reports.correlation_study import (
    REFERENCE_SCORES,
    baseline_verdict,
    corpus_names,
    ntps_matrix,
    probe_targets,
    summarize_targets,
    summary_table,
)

GAIN = "accuracy_gain"
BEST_LAYER_GAIN = "gain_over_best_layer"
GAIN_TARGETS = {GAIN: "Gain over the probe at the final block", BEST_LAYER_GAIN: "Gain over the probe at the best layer"}
# How each fine-tune went (ntps.modeling.training.train_and_score), carried into the gains table.
TRAINING_COLUMNS = (
    "steps", "planned_steps", "training_seconds", "validation_accuracy", "chance_accuracy", "learned", "plateau_reached",
    "steps_to_plateau",
)  # fmt: skip
# A representation already aligned with the task should leave LoRA less to gain.
GAIN_DIRECTION = -1
# Scores ranked against the gain without any search: the paper's baseline (the probe's own
# accuracy, an estimator) and every reference score of the probe report.
GAIN_BASELINES = {"probe_test_accuracy": 1, **REFERENCE_SCORES}
PAIR = ["model", "dataset"]


def _final_block_probes(probe_metrics: pd.DataFrame) -> pd.DataFrame:
    """The probes on the mean-pooled final block: the features LoRA's and full training's head read."""
    return probe_targets(probe_metrics, {"probe_hidden_state": -1})


def _check_pairs(kind: str, wanted: pd.DataFrame, available: pd.DataFrame, source: str) -> None:
    missing = sorted(set(map(tuple, wanted[PAIR].to_numpy())) - set(map(tuple, available[PAIR].to_numpy())))
    if missing:
        raise NtpsInputError(
            f"{kind} for {missing}, but {source} has no such model x dataset: run `kedro run --pipelines=ntps` "
            "with the same run: selection first"
        )


def accuracy_gains(lora_metrics: pd.DataFrame, probe_metrics: pd.DataFrame, layer_probes: pd.DataFrame) -> pd.DataFrame:
    """What LoRA adds, on the held-out texts, over the logistic probe at the final block (the paper's
    "ACC gain") and at the best layer (the run report's choice, by the ridge probe's leave-one-out
    accuracy on the training texts), per model x dataset.

    Returns:
        model, dataset, probe_test_accuracy (final block), best_layer, best_layer_probe_accuracy,
        lora_test_accuracy, accuracy_gain (over the final block), gain_over_best_layer,
        lora_train_accuracy, steps, planned_steps, training_seconds, validation_accuracy, chance_accuracy, learned,
        plateau_reached, steps_to_plateau, and the probe report's reference scores (logme, h_score, n_classes, ...).
    """
    probes = _final_block_probes(probe_metrics)
    _check_pairs("LoRA was trained", lora_metrics, probes, "the probe metrics")
    _check_pairs("LoRA was trained", lora_metrics, layer_probes, "the layer probe table")
    best = layer_probes[layer_probes["best_layer"]][[*PAIR, "hidden_state", "logistic_test_accuracy"]].rename(
        columns={"hidden_state": "best_layer", "logistic_test_accuracy": "best_layer_probe_accuracy"}
    )
    table = lora_metrics.merge(probes, on=PAIR, how="left").merge(best, on=PAIR, how="left")
    table = table.rename(columns={"logistic_test_accuracy": "probe_test_accuracy"})
    table[GAIN] = table["lora_test_accuracy"] - table["probe_test_accuracy"]
    table[BEST_LAYER_GAIN] = table["lora_test_accuracy"] - table["best_layer_probe_accuracy"]
    training = [column for column in TRAINING_COLUMNS if column in table.columns]
    references = [name for name in REFERENCE_SCORES if name in table.columns]
    columns = [
        *PAIR,
        "probe_test_accuracy",
        "best_layer",
        "best_layer_probe_accuracy",
        "lora_test_accuracy",
        GAIN,
        BEST_LAYER_GAIN,
        "lora_train_accuracy",
        *training,
        *references,
    ]
    return table[columns].sort_values(PAIR, ignore_index=True)


def gain_correlation_summary(
    ntps_table: pd.DataFrame,
    gains: pd.DataFrame,
    settings: dict[str, Any],
    datasets: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Per model, how well NTPS (best in-sample and leave-one-dataset-out, both variants) and each of
    GAIN_BASELINES rank the datasets by each gain (expected sign: negative), with bootstrap
    intervals, permutation p-values, and leave-one-corpus-out rows where the datasets registry puts
    several datasets in one corpus; models with fewer than 3 datasets are skipped."""
    directions = dict.fromkeys(GAIN_TARGETS, GAIN_DIRECTION)
    return summarize_targets(ntps_table, gains, directions, GAIN_BASELINES, settings, corpus_names(datasets))


# NTPS is a ratio in [0, 1] computed from float64 sums: the same states summed in another order (the
# embeddings, which adapters in the attention blocks leave as they were, batched otherwise after LoRA)
# move it by about 1e-12. A change within this is rounding, neither a rise nor a fall.
NTPS_CHANGE_RESOLUTION = 1e-9


def ntps_rose(before: ArrayLike, after: ArrayLike) -> np.ndarray:
    """Where NTPS rose from `before` to `after` by more than rounding (NTPS_CHANGE_RESOLUTION)."""
    return np.asarray(after, dtype=np.float64) > np.asarray(before, dtype=np.float64) + NTPS_CHANGE_RESOLUTION


def _relative_change_percent(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(before > 0, 100 * (after - before) / np.where(before > 0, before, 1), np.nan)


def _nearest_fraction(rows: pd.DataFrame, layer: int, k_fraction: float) -> pd.Series:
    """The row of one layer whose k_fraction is nearest k_fraction."""
    at_layer = rows[rows["layer"] == layer]
    return at_layer.loc[(at_layer["k_fraction"] - k_fraction).abs().idxmin()]


def ntps_change_table(
    ntps_before: pd.DataFrame, ntps_after: pd.DataFrame, settings: dict[str, Any], configuration: dict[str, Any]
) -> pd.DataFrame:
    """The paper's Table 2: NTPS after LoRA relative to before (%), per model x dataset x variant, at
    one configuration, and over the whole grid the correlations search (settings as
    correlation_reports.ntps_matrix): the share of configurations where NTPS rose and the median
    relative change.

    Args:
        configuration: "layer" (a hidden state; < 0 counts from the last) and "k_fraction" in (0, 1]
            (the row whose k/d is nearest: k = round(k_fraction d), at least 1, for the variants
            scored at every k; the nearest released fraction for released_code).

    Returns:
        model, dataset, variant, layer, k, k_fraction, ntps_before, ntps_after,
        relative_change_percent, grid_share_increased, grid_median_relative_change_percent,
        grid_configurations.
    """
    _check_pairs("NTPS after LoRA was computed", ntps_after, ntps_before, "the NTPS table")
    rows = []
    for (model, dataset, variant), after in ntps_after.groupby([*PAIR, "variant"], sort=True):
        before = ntps_before[
            (ntps_before["model"] == model) & (ntps_before["dataset"] == dataset) & (ntps_before["variant"] == variant)
        ]
        hidden_states = int(before["layer"].max()) + 1
        layer = int(configuration["layer"])
        if not -hidden_states <= layer < hidden_states:
            raise NtpsInputError(f"lora_report.ntps_change_at.layer {layer} does not exist: {model} has {hidden_states}")
        layer %= hidden_states
        # k/d nearest the fraction is the paper grid's round(f d); released_code rows carry f itself.
        check_k_fractions([float(configuration["k_fraction"])])
        chosen_before, chosen_after = (
            _nearest_fraction(table, layer, float(configuration["k_fraction"])) for table in (before, after)
        )
        value_before, value_after = np.array([chosen_before["ntps"]]), np.array([chosen_after["ntps"]])
        configurations, grid_before = ntps_matrix(before, [dataset], settings)
        _, grid_after = ntps_matrix(after, [dataset], settings)
        grid_change = _relative_change_percent(grid_before[:, 0], grid_after[:, 0])
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "variant": variant,
                "layer": layer,
                "k": int(chosen_before["k"]),
                "k_fraction": float(chosen_before["k_fraction"]),
                "ntps_before": float(value_before[0]),
                "ntps_after": float(value_after[0]),
                "relative_change_percent": float(_relative_change_percent(value_before, value_after)[0]),
                "grid_share_increased": float(np.mean(ntps_rose(grid_before[:, 0], grid_after[:, 0]))),
                "grid_median_relative_change_percent": float(np.nanmedian(grid_change)),
                "grid_configurations": len(configurations),
            }
        )
    return pd.DataFrame(rows)


def linear_vs_full_table(probe_metrics: pd.DataFrame, scratch_metrics: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1: the linear probe's test accuracy on the pretrained model's final block
    against the same architecture trained from scratch, per model x dataset.

    Returns:
        model, dataset, linear_test_accuracy, full_test_accuracy, linear_minus_full, steps.
    """
    probes = _final_block_probes(probe_metrics)
    _check_pairs("training from scratch ran", scratch_metrics, probes, "the probe metrics")
    table = scratch_metrics.merge(probes, on=PAIR, how="left").rename(
        columns={"logistic_test_accuracy": "linear_test_accuracy", "scratch_test_accuracy": "full_test_accuracy"}
    )
    table["linear_minus_full"] = table["linear_test_accuracy"] - table["full_test_accuracy"]
    return table[[*PAIR, "linear_test_accuracy", "full_test_accuracy", "linear_minus_full", "steps"]].sort_values(
        PAIR, ignore_index=True
    )


def _percent_grid(table: pd.DataFrame, columns: dict[str, str], digits: int = 1) -> list[str]:
    """A markdown table with one row per dataset and, per model, one column per entry of columns
    (table column -> header), values in percent."""
    models = sorted(table["model"].unique())
    header = [f"{model} {label}" for model in models for label in columns.values()]
    lines = ["| dataset | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for dataset, rows in table.groupby("dataset", sort=True):
        by_model = rows.set_index("model")
        cells = [
            f"{100 * by_model.loc[model, column]:.{digits}f}" if model in by_model.index else ""
            for model in models
            for column in columns
        ]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return lines


def linear_vs_full_markdown(table: pd.DataFrame) -> str:
    lines = [
        "# Linear probe vs full training from scratch (the paper's Table 1)",
        "",
        "Test accuracy (%) of a logistic probe on the pretrained model's mean-pooled final block (`Linear`) and of",
        "the same architecture trained from random weights with the same head (`Full`), per dataset and model.",
        f"Full training ran {', '.join(str(steps) for steps in sorted(table['steps'].unique()))} steps.",
        "",
        *_percent_grid(table, {"linear_test_accuracy": "Linear", "full_test_accuracy": "Full"}),
        "",
    ]
    for model, rows in table.groupby("model", sort=True):
        better = int((rows["linear_minus_full"] > 0.01).sum())
        worse = int((rows["linear_minus_full"] < -0.01).sum())
        lines.append(
            f"- {model}: the probe beats full training by more than 1 point on {better} of {len(rows)} datasets, "
            f"trails it by more than 1 point on {worse}."
        )
    return "\n".join(lines) + "\n"


def lora_markdown_report(gains: pd.DataFrame, gain_summary: pd.DataFrame, ntps_change: pd.DataFrame) -> str:
    """Is LoRA worth it, per model and dataset, and does NTPS tell in advance?"""
    lines = [
        "# Is LoRA worth it? NTPS as a prescreen for fine-tuning",
        "",
        "## Accuracy gain of LoRA over the linear probe (test split)",
        "",
        "Held-out accuracy of the logistic probe at the final block (the paper's baseline) and at the best layer",
        "(chosen on the training texts by the run report), of LoRA, and LoRA's gain over each. Plateau: whether the",
        'validation accuracy levelled off (docs/lora.md), and at which step; "not above chance": the validation accuracy',
        "is within two standard errors of the majority class's share, so that gain says nothing about LoRA. Steps: those",
        "trained, of those planned (with `stop_at_plateau`, training stops once the validation accuracy levels off).",
        "",
        "| model | dataset | probe, final block | best layer | probe there | LoRA | gain over final block | "
        "gain over best layer | steps | plateau | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in gains.itertuples():
        plateau = f"yes, step {row.steps_to_plateau}" if row.plateau_reached else "no"
        plateau = plateau if row.learned else f"{plateau}; not above chance"
        lines.append(
            f"| {row.model} | {row.dataset} | {row.probe_test_accuracy:.3f} | {row.best_layer} | "
            f"{row.best_layer_probe_accuracy:.3f} | {row.lora_test_accuracy:.3f} | {row.accuracy_gain:+.3f} | "
            f"{row.gain_over_best_layer:+.3f} | {row.steps} of {row.planned_steps} | {plateau} | "
            f"{row.training_seconds / 60:.1f} |"
        )
    lines += ["", "## Does NTPS predict the gain? (the paper's Figure 3)", ""]
    if gain_summary.empty:
        lines.append("No model had the 3 or more datasets a rank correlation across datasets needs.")
    else:
        lines += [
            "Rank correlation (Spearman r, Kendall's tau-b, weighted tau) across datasets between each score and",
            "the gain; the expected sign is negative (a task the representation already serves leaves less to",
            "gain), and each score enters with the sign that makes larger mean better served (n_classes",
            "negated). `best_in_sample` is the paper's number (the",
            "(layer, k) with the strongest r, chosen on the datasets it is reported on; its p-value repeats that",
            "search under every permutation); `leave_one_dataset_out` scores each dataset at the configuration",
            "chosen without it; `probe_test_accuracy` is the paper's baseline predictor; the other scores need",
            "no NTPS (docs/scores.md). Intervals: bootstrap over datasets.",
            "",
        ]
        for target, target_rows in gain_summary.groupby("target", sort=False):
            lines += [f"### {GAIN_TARGETS[target]}", "", *summary_table(target_rows, "model"), ""]
            for (model, _), rows in target_rows.groupby(["model", "statistic"], sort=False):
                lines.append(f"- {model}, {baseline_verdict(rows)}")
            lines.append("")
    lines += ["## NTPS after LoRA (the paper's Table 2)", ""]
    for variant in scored_variants(ntps_change):
        rows = ntps_change[ntps_change["variant"] == variant]
        increased = int(ntps_rose(rows["ntps_before"], rows["ntps_after"]).sum())
        lines += [
            f"### variant `{variant}`: NTPS rose in {increased} of {len(rows)} runs",
            "",
            "| model | dataset | layer | k | NTPS before | NTPS after | change (%) | grid share up | "
            "grid median change (%) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in rows.itertuples():
            lines.append(
                f"| {row.model} | {row.dataset} | {row.layer} | {row.k} | "
                f"{row.ntps_before:.4f} | {row.ntps_after:.4f} | {row.relative_change_percent:+.2f} | "
                f"{row.grid_share_increased:.2f} | {row.grid_median_relative_change_percent:+.2f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"

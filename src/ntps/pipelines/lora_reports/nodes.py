"""Accuracy gains of LoRA over the linear probe, how well NTPS predicts them (the paper's Figure 3),
NTPS after LoRA (Table 2), the training curves, a markdown report and MLflow metrics."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ntps.reports.correlation_study import FIGURE_STATISTIC
from ntps.reports.lora_study import (
    GAIN,
    accuracy_gains,
    gain_correlation_summary,
    ntps_change_table,
)
from ntps.reports.plots import empty_figure, plot_ntps_at_configuration, plot_score_comparison, scatter_with_fit


def summarize_gains(
    lora_metrics: pd.DataFrame,
    probe_metrics: pd.DataFrame,
    layer_probe_table: pd.DataFrame,
    ntps_table: pd.DataFrame,
    correlation: dict[str, Any],
    datasets: dict[str, dict[str, Any]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accuracy gains per pair, rank correlations of NTPS and of the baselines with them per model)."""
    gains = accuracy_gains(lora_metrics, probe_metrics, layer_probe_table)
    return gains, gain_correlation_summary(ntps_table, gains, correlation, datasets)


def compare_ntps_after_lora(
    ntps_table: pd.DataFrame, ntps_table_after_lora: pd.DataFrame, correlation: dict[str, Any], lora_report: dict[str, Any]
) -> pd.DataFrame:
    return ntps_change_table(ntps_table, ntps_table_after_lora, correlation, lora_report["ntps_change_at"])


def lora_metrics_for_mlflow(
    gains: pd.DataFrame, gain_correlations: pd.DataFrame, ntps_change: pd.DataFrame
) -> dict[str, list[dict[str, float]]]:
    """accuracy_gain.<model>.<dataset>, gain_over_best_layer.<model>.<dataset>,
    lora_test_accuracy.<model>.<dataset>, ntps_change_percent.<variant>.<model>.<dataset>, and
    <statistic> / p_value.<statistic>.<model>.<gain>.<score>.<selection>, one MLflow metric each."""
    values = {}
    for row in gains.itertuples():
        values[f"accuracy_gain.{row.model}.{row.dataset}"] = row.accuracy_gain
        values[f"gain_over_best_layer.{row.model}.{row.dataset}"] = row.gain_over_best_layer
        values[f"lora_test_accuracy.{row.model}.{row.dataset}"] = row.lora_test_accuracy
    for row in ntps_change.itertuples():
        values[f"ntps_change_percent.{row.variant}.{row.model}.{row.dataset}"] = row.relative_change_percent
    for row in gain_correlations.itertuples():
        name = f"{row.statistic}.{row.model}.{row.target}.{row.score}.{row.selection}"
        values[name], values[f"p_value.{name}"] = row.r, row.p_value
    return {name: [{"step": 0, "value": float(value)}] for name, value in values.items() if np.isfinite(value)}


def _title(row: pd.Series) -> str:
    return f"r={row['r']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}], p={row['p_value']:.2f}"


def plot_ntps_vs_gain(
    ntps_table: pd.DataFrame,
    gains: pd.DataFrame,
    gain_correlations: pd.DataFrame,
    lora_report: dict[str, Any],
) -> plt.Figure:
    """The paper's Figure 3: per model (columns), each dataset's NTPS at the model's best in-sample
    (layer, k) against the accuracy gain (top), and the probe's accuracy against the gain (bottom),
    with dashed least-squares lines; titles give r, its bootstrap interval and permutation p, and
    NTPS's leave-one-dataset-out r."""
    gain_correlations = gain_correlations[
        (gain_correlations["statistic"] == FIGURE_STATISTIC) & (gain_correlations["target"] == GAIN)
    ]
    if gain_correlations.empty:
        return empty_figure("fewer than 3 datasets per model (or no Spearman r): no correlation with the LoRA gain to plot")
    variant = lora_report["figure_variant"]
    models = sorted(gain_correlations["model"].unique())
    figure, axes = plt.subplots(2, len(models), figsize=(4.4 * len(models), 7.4), squeeze=False)
    for column, model in enumerate(models):
        rows = gain_correlations[gain_correlations["model"] == model].set_index(["score", "selection"])
        datasets = rows["datasets"].iloc[0].split(",")
        gain = gains.set_index(["model", "dataset"]).loc[[(model, dataset) for dataset in datasets]]
        chosen, honest = (
            rows.loc[(f"ntps_{variant}", "best_in_sample")],
            rows.loc[(f"ntps_{variant}", "leave_one_dataset_out")],
        )
        plot_ntps_at_configuration(
            axes[0, column],
            ntps_table,
            chosen,
            variant,
            datasets,
            gain[GAIN].to_numpy(),
            ylabel="accuracy gain (LoRA - probe)",
            title=lambda layer, k: (
                f"{model}: NTPS layer {layer}, k={k}\nin-sample {_title(chosen)}\nleave-one-dataset-out r={honest['r']:.2f}"
            ),
            undefined_note="r undefined (the gain is the same on every dataset)",
        )
        axis = axes[1, column]
        scatter_with_fit(axis, gain["probe_test_accuracy"].to_numpy(), gain[GAIN].to_numpy(), datasets)
        axis.set_title(f"{model}: linear probe accuracy\n{_title(rows.loc[('probe_test_accuracy', 'none')])}", fontsize=8)
        axis.set_xlabel("linear probe test accuracy")
        axis.set_ylabel("accuracy gain (LoRA - probe)")
    figure.tight_layout()
    return figure


def plot_scores_against_gain(gain_correlations: pd.DataFrame) -> plt.Figure:
    return plot_score_comparison(gain_correlations, "How well each score ranks datasets by LoRA's accuracy gain")


def plot_ntps_change(ntps_change: pd.DataFrame) -> plt.Figure:
    """Table 2 as bars: the relative change of NTPS after LoRA per dataset, one panel per model and
    variant, at the table's configuration; the grid's median change as a marker."""
    if ntps_change.empty:
        return empty_figure("no NTPS after LoRA to compare")
    panels = list(ntps_change.groupby(["model", "variant"], sort=True))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for axis, ((model, variant), rows) in zip(axes[0], panels):
        positions = np.arange(len(rows))
        colors = np.where(rows["relative_change_percent"] >= 0, "tab:green", "tab:red")
        axis.bar(positions, rows["relative_change_percent"], color=colors, label="at the configuration")
        axis.scatter(
            positions, rows["grid_median_relative_change_percent"], color="black", marker="D", s=14, label="grid median"
        )
        axis.axhline(0, color="gray", linewidth=0.8)
        axis.set_xticks(positions, rows["dataset"], rotation=45, ha="right", fontsize=8)
        axis.set_ylabel("NTPS change after LoRA (%)")
        axis.set_title(f"{model} ({variant} variant)", fontsize=9)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_training_curves(lora_training_log: pd.DataFrame) -> plt.Figure:
    """Per model (columns): the training cross-entropy per step (top) and the validation accuracy
    where it was measured (bottom), one line per dataset."""
    models = sorted(lora_training_log["model"].unique())
    figure, axes = plt.subplots(2, len(models), figsize=(5.5 * len(models), 6.8), squeeze=False)
    for column, model in enumerate(models):
        loss_axis, validation_axis = axes[0, column], axes[1, column]
        for dataset, rows in lora_training_log[lora_training_log["model"] == model].groupby("dataset", sort=True):
            (line,) = loss_axis.plot(rows["step"], rows["loss"], label=dataset, linewidth=1)
            if "validation_accuracy" in rows and rows["validation_accuracy"].notna().any():
                measured = rows.dropna(subset=["validation_accuracy"])
                validation_axis.plot(
                    measured["step"], measured["validation_accuracy"], marker=".", color=line.get_color(), label=dataset
                )
        loss_axis.set(xlabel="step", ylabel="training cross-entropy", title=f"{model}: LoRA training")
        validation_axis.set(xlabel="step", ylabel="validation accuracy", title=f"{model}: learning curve")
        loss_axis.legend(fontsize=7)
        if validation_axis.lines:
            validation_axis.legend(fontsize=7)
        else:
            validation_axis.text(
                0.5,
                0.5,
                "no validation texts (lora.validation_fraction: 0)",
                ha="center",
                transform=validation_axis.transAxes,
            )
    figure.tight_layout()
    return figure

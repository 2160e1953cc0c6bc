"""NTPS against probe performance across datasets: tables, a markdown report, MLflow metrics and
the paper's Figure 2."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ntps.core.ntps import scored_variants
from ntps.reports.correlation_study import FIGURE_STATISTIC, TARGET_DIRECTIONS, probe_targets
from ntps.reports.plots import empty_figure, plot_ntps_at_configuration, plot_score_comparison


def correlation_metrics(summary: pd.DataFrame) -> dict[str, list[dict[str, float]]]:
    """<statistic>.<model>.<target>.<score>.<selection> and p_value.<statistic>.<...>, one MLflow
    metric each."""
    metrics = {}
    for row in summary.itertuples():
        name = f"{row.statistic}.{row.model}.{row.target}.{row.score}.{row.selection}"
        for prefix, value in (("", row.r), ("p_value.", row.p_value)):
            if np.isfinite(value):
                metrics[f"{prefix}{name}"] = [{"step": 0, "value": float(value)}]
    return metrics


def plot_scores_against_probes(summary: pd.DataFrame) -> plt.Figure:
    return plot_score_comparison(summary, "How well each score ranks datasets by each probe metric")


def plot_ntps_vs_probes(
    ntps_table: pd.DataFrame, probe_metrics: pd.DataFrame, summary: pd.DataFrame, correlation: dict[str, Any]
) -> plt.Figure:
    """The paper's Figure 2: per model (columns) and target (rows), each dataset's NTPS at the
    model's best in-sample (layer, k) against the probe metric, with a dashed least-squares line;
    titles give the in-sample r and the leave-one-dataset-out r with its interval."""
    if summary.empty or FIGURE_STATISTIC not in set(summary["statistic"]):
        return empty_figure("fewer than 3 datasets per model (or no Spearman r computed): no correlation to plot")
    variant = correlation["figure_variant"]
    summary = summary[summary["statistic"] == FIGURE_STATISTIC]
    targets = probe_targets(probe_metrics, correlation).set_index(["model", "dataset"])
    models = sorted(summary["model"].unique())
    figure, axes = plt.subplots(
        len(TARGET_DIRECTIONS), len(models), figsize=(4.2 * len(models), 3.6 * len(TARGET_DIRECTIONS)), squeeze=False
    )
    for column, model in enumerate(models):
        model_rows = summary[(summary["model"] == model) & (summary["score"] == f"ntps_{variant}")]
        datasets = model_rows["datasets"].iloc[0].split(",")
        for row, target in enumerate(TARGET_DIRECTIONS):
            chosen = model_rows[(model_rows["target"] == target) & (model_rows["selection"] == "best_in_sample")].iloc[0]
            honest = model_rows[
                (model_rows["target"] == target) & (model_rows["selection"] == "leave_one_dataset_out")
            ].iloc[0]
            plot_ntps_at_configuration(
                axes[row, column],
                ntps_table,
                chosen,
                variant,
                datasets,
                targets.loc[[(model, dataset) for dataset in datasets], target].to_numpy(),
                ylabel=target,
                title=lambda layer, k: (
                    f"{model}: layer {layer}, k={k}\n"
                    f"in-sample r={chosen['r']:.2f} (p={chosen['p_value']:.2f}); "
                    f"LOO r={honest['r']:.2f} [{honest['ci_low']:.2f}, {honest['ci_high']:.2f}]"
                ),
                undefined_note=f"{target}:\nr undefined (the same on every dataset)",
                note_fontsize=9,
            )
    figure.tight_layout()
    return figure


def plot_correlation_heatmaps(correlations: pd.DataFrame, summary: pd.DataFrame) -> plt.Figure:
    """Spearman r over layer x k/d, one row per model x target, one column per NTPS variant; the
    best in-sample configuration is starred."""
    correlations = correlations[correlations["statistic"] == FIGURE_STATISTIC]
    summary = summary[summary["statistic"] == FIGURE_STATISTIC]
    if correlations.empty:
        return empty_figure("fewer than 3 datasets per model (or no Spearman r computed): no correlation to plot")
    panels = list(correlations.groupby(["model", "target"], sort=True))
    variants = scored_variants(correlations)
    figure, axes = plt.subplots(
        len(panels), len(variants), figsize=(5 * len(variants), 3 * len(panels)), squeeze=False, constrained_layout=True
    )
    for row, ((model, target), rows) in enumerate(panels):
        for column, variant in enumerate(variants):
            axis = axes[row, column]
            grid = rows[rows["variant"] == variant].pivot(index="layer", columns="k_fraction", values="r")
            image = axis.imshow(
                grid.to_numpy(),
                aspect="auto",
                origin="lower",
                cmap="RdBu_r",
                vmin=-1,
                vmax=1,
                extent=(grid.columns.min(), grid.columns.max(), grid.index.min() - 0.5, grid.index.max() + 0.5),
            )
            best = summary[
                (summary["model"] == model)
                & (summary["target"] == target)
                & (summary["score"] == f"ntps_{variant}")
                & (summary["selection"] == "best_in_sample")
            ]
            if len(best) and not pd.isna(best["layer"].iloc[0]):
                axis.plot(best["k_fraction"].iloc[0], best["layer"].iloc[0], marker="*", color="gold", markersize=12)
            axis.set_title(f"{model}: NTPS ({variant}) vs {target}", fontsize=9)
            axis.set_xlabel("k / d")
            axis.set_ylabel("layer (0 = embeddings)")
            figure.colorbar(image, ax=axis, label="Spearman r")
    return figure

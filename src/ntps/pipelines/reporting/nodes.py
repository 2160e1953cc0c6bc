"""The run's NTPS table, its summary metrics for MLflow, and a heatmap per model x dataset."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ntps.core.label_null import NULL_VARIANTS  # noqa: E402
from ntps.core.ntps import check_k_fractions, scored_variants  # noqa: E402
from ntps.reports.label_null import NULL_ALPHA, excess_grid, has_label_null  # noqa: E402
from ntps.reports.plots import empty_figure  # noqa: E402


def concatenate_tables(*tables: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(tables, ignore_index=True)


def summarize_ntps(ntps_table: pd.DataFrame, reporting: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    """Per model, dataset and variant, the score at the k/d nearest summary_k_fraction as a history
    over layers (MLflow's step is the layer), so the MLflow UI draws each score against depth."""
    fraction = float(reporting["summary_k_fraction"])
    check_k_fractions([fraction])
    metrics = {}
    for (model, dataset, variant), rows in ntps_table.groupby(["model", "dataset", "variant"], sort=True):
        nearest = rows.loc[(rows["k_fraction"] - fraction).abs().groupby(rows["layer"]).idxmin()].sort_values("layer")
        metrics[f"ntps_{variant}_at_{round(100 * fraction)}pct.{model}.{dataset}"] = [
            {"step": int(layer), "value": float(value)} for layer, value in zip(nearest["layer"], nearest["ntps"])
        ]
    return metrics


def layer_heatmap(axis: plt.Axes, grid: pd.DataFrame, cmap: str):
    """Draw a layer x k-fraction grid of scores in [0, 1] (rows: layers, columns: fractions)."""
    image = axis.imshow(
        grid.to_numpy(),
        aspect="auto",
        origin="lower",
        vmin=0,
        vmax=1,
        cmap=cmap,
        extent=(grid.columns.min(), grid.columns.max(), -0.5, grid.shape[0] - 0.5),
    )
    axis.set_ylabel("layer (0 = embeddings)")
    axis.set_yticks(np.linspace(0, grid.shape[0] - 1, min(grid.shape[0], 6)).round().astype(int))
    return image


def plot_ntps_heatmaps(ntps_table: pd.DataFrame) -> plt.Figure:
    """Layer x k/d heatmaps of every variant the table holds, one row per model x dataset; the dotted
    line marks the signal rank r (U's nonzero eigenvalues)."""
    pairs = list(ntps_table.groupby(["model", "dataset"], sort=True))
    variants = scored_variants(ntps_table)
    figure, axes = plt.subplots(
        len(pairs), len(variants), figsize=(4.6 * len(variants), 3.2 * len(pairs)), squeeze=False, constrained_layout=True
    )
    for row, ((model, dataset), rows) in enumerate(pairs):
        rank = int(rows["signal_rank"].iloc[0])
        hidden_size = int(rows.loc[rows["variant"] == "paper", "k"].max())
        for column, variant in enumerate(variants):
            grid = rows[rows["variant"] == variant].pivot(index="layer", columns="k_fraction", values="ntps")
            axis = axes[row, column]
            image = layer_heatmap(axis, grid, "viridis")
            axis.set_title(f"{model} / {dataset}: {variant} (r={rank})", fontsize=9)
            if variant == "released_code":
                axis.set_xlabel("fraction f of U's and V's ranks")
            else:
                axis.axvline(rank / hidden_size, color="white", linestyle=":", linewidth=1)
                axis.set_xlabel("k / d")
            figure.colorbar(image, ax=axis, label="score")
    return figure


def plot_ntps_null_heatmaps(ntps_table: pd.DataFrame) -> plt.Figure:
    """Layer x k/d heatmaps of each score minus its shuffled-label null mean, one row per model x
    dataset, one column per variant with a null; black dots mark where the score is above its null
    (p <= NULL_ALPHA), white where undefined (paper beyond the signal rank, layers not pooled)."""
    if not has_label_null(ntps_table):
        return empty_figure("no shuffled-label null in this run (ntps_scores.label_null.shuffles is 0)")
    with_null = ntps_table[ntps_table["variant"].isin(NULL_VARIANTS)]
    pairs = list(with_null.groupby(["model", "dataset"], sort=True))
    variants = [variant for variant in NULL_VARIANTS if variant in set(with_null["variant"])]
    limit = max(float(with_null["excess_over_null"].abs().max()), 1e-6)
    figure, axes = plt.subplots(
        len(pairs), len(variants), figsize=(4.6 * len(variants), 3.2 * len(pairs)), squeeze=False, constrained_layout=True
    )
    for row, ((model, dataset), rows) in enumerate(pairs):
        for column, variant in enumerate(variants):
            excess, p_values = excess_grid(rows[rows["variant"] == variant])
            axis = axes[row, column]
            extent = (excess.columns.min(), excess.columns.max(), -0.5, excess.shape[0] - 0.5)
            image = axis.imshow(
                excess.to_numpy(), aspect="auto", origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit, extent=extent
            )
            layers, fractions = np.nonzero(p_values.to_numpy() <= NULL_ALPHA)
            axis.scatter(excess.columns.to_numpy()[fractions], layers, s=2, color="black")
            axis.set_title(f"{model} / {dataset}: {variant} - null mean", fontsize=9)
            axis.set_xlabel("k / d")
            axis.set_ylabel("layer (0 = embeddings)")
            figure.colorbar(image, ax=axis, label="excess over shuffled labels")
    figure.suptitle(f"Score minus its shuffled-label null (dots: above the null, p <= {NULL_ALPHA})", fontsize=10)
    return figure


def summarize_theorem2(excess_loss_table: pd.DataFrame) -> pd.DataFrame:
    """Per model, dataset and layer: how often eq. (41) holds, split at the signal rank r, and how far
    apart its constants are (C_max / C_min at k = r, where C_min is last nonzero)."""
    rows = []
    for (model, dataset, layer), layer_rows in excess_loss_table.groupby(["model", "dataset", "layer"], sort=True):
        rank = int(layer_rows["signal_rank"].iloc[0])
        below, from_rank = layer_rows[layer_rows["k"] < rank], layer_rows[layer_rows["k"] >= rank]
        at_rank = layer_rows[layer_rows["k"] == rank].iloc[0]
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "layer": layer,
                "signal_rank": rank,
                "holds_share_k_below_rank": below["theorem2_holds"].mean() if len(below) else np.nan,
                "holds_share_k_from_rank": from_rank["theorem2_holds"].mean(),
                "constant_ratio_at_rank": at_rank["theorem2_upper"] / at_rank["theorem2_lower"]
                if at_rank["theorem2_lower"] > 0
                else np.inf,
                "n_eigenvalue_min": at_rank["n_eigenvalue_min"],
                "n_eigenvalue_max": at_rank["n_eigenvalue_max"],
                "excess_loss_at_rank": at_rank["excess_loss"],
                "label_variance_kept_at_rank": at_rank["label_variance_kept"],
            }
        )
    return pd.DataFrame(rows)


def plot_excess_loss(excess_loss_table: pd.DataFrame) -> plt.Figure:
    """Per model x dataset: the share of explainable label variance span(V_k) keeps (layer x k/d),
    and at the penultimate layer the paper's excess loss L*(V_k) - L*(U_k) between Theorem 2's bounds."""
    pairs = list(excess_loss_table.groupby(["model", "dataset"], sort=True))
    figure, axes = plt.subplots(len(pairs), 2, figsize=(11, 3.4 * len(pairs)), squeeze=False, constrained_layout=True)
    for row, ((model, dataset), rows) in enumerate(pairs):
        grid = rows.pivot(index="layer", columns="k_fraction", values="label_variance_kept")
        axis = axes[row, 0]
        image = layer_heatmap(axis, grid, "magma")
        axis.set_title(f"{model} / {dataset}: label variance kept by span(V_k)", fontsize=9)
        axis.set_xlabel("k / d")
        figure.colorbar(image, ax=axis, label="1 - ΔL(k) / ΣΛ")

        layer = max(int(rows["layer"].max()) - 1, 0)
        at_layer = rows[rows["layer"] == layer].sort_values("k")
        axis = axes[row, 1]
        axis.fill_between(
            at_layer["k"],
            at_layer["theorem2_lower"],
            at_layer["theorem2_upper"],
            color="tab:blue",
            alpha=0.2,
            label="eq. (41) bounds",
        )
        axis.plot(at_layer["k"], at_layer["excess_loss_vs_u"], color="black", label="L*(V_k) - L*(U_k)")
        axis.plot(at_layer["k"], at_layer["excess_loss"], color="tab:red", linestyle="--", label="ΔL(k) = ΣΛ - T(k)")
        failures = at_layer[~at_layer["theorem2_holds"]]
        axis.scatter(failures["k"], failures["excess_loss_vs_u"], color="tab:orange", s=8, zorder=3, label="bound violated")
        axis.axvline(int(rows["signal_rank"].iloc[0]), color="grey", linestyle=":", linewidth=1)
        axis.set_yscale("symlog", linthresh=1e-6)
        axis.set_ylim(bottom=0)  # losses are >= 0; rounding leaves -1e-15 at k = d
        axis.set_title(f"{model} / {dataset}, layer {layer}: Theorem 2", fontsize=9)
        axis.set_xlabel("k (dotted: signal rank r)")
        axis.set_ylabel("excess loss")
        axis.legend(fontsize=7)
    return figure

"""The run's NTPS table, its summary metrics for MLflow, and a heatmap per model x dataset."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ntps.core.scores import paper_grid_ks  # noqa: E402


def concatenate_tables(*tables: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(tables, ignore_index=True)


def summarize_ntps(ntps_table: pd.DataFrame, reporting: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    """Per model, dataset and variant, NTPS at k = summary_k_fraction * d as a history over layers
    (MLflow's step is the layer), so the MLflow UI draws NTPS against depth."""
    fraction = float(reporting["summary_k_fraction"])
    metrics = {}
    for (model, dataset, variant), rows in ntps_table.groupby(["model", "dataset", "variant"], sort=True):
        hidden_size = int(rows["k"].max())
        k = int(paper_grid_ks(hidden_size, [fraction])[0])
        at_k = rows[rows["k"] == k].sort_values("layer")
        metrics[f"ntps_{variant}_k{k}.{model}.{dataset}"] = [
            {"step": int(layer), "value": float(value)} for layer, value in zip(at_k["layer"], at_k["ntps"])
        ]
    return metrics


def plot_ntps_heatmaps(ntps_table: pd.DataFrame) -> plt.Figure:
    """Layer x k/d heatmaps of both variants, one row per model x dataset."""
    pairs = list(ntps_table.groupby(["model", "dataset"], sort=True))
    figure, axes = plt.subplots(len(pairs), 2, figsize=(11, 3.2 * len(pairs)), squeeze=False, constrained_layout=True)
    for row, ((model, dataset), rows) in enumerate(pairs):
        for column, variant in enumerate(("paper", "signal")):
            grid = rows[rows["variant"] == variant].pivot(index="layer", columns="k", values="ntps")
            axis = axes[row, column]
            image = axis.imshow(
                grid.to_numpy(),
                aspect="auto",
                origin="lower",
                vmin=0,
                vmax=1,
                cmap="viridis",
                extent=(0, 1, -0.5, grid.shape[0] - 0.5),
            )
            rank = int(rows["signal_rank"].iloc[0])
            axis.axvline(rank / grid.shape[1], color="white", linestyle=":", linewidth=1)
            axis.set_title(f"{model} / {dataset}: {variant} (r={rank})", fontsize=9)
            axis.set_xlabel("k / d")
            axis.set_ylabel("layer (0 = embeddings)")
            axis.set_yticks(np.linspace(0, grid.shape[0] - 1, min(grid.shape[0], 6)).round().astype(int))
            figure.colorbar(image, ax=axis, label="NTPS")
    return figure

"""Is NTPS above its own shuffled-label null? Where (layer, k) it is and where it is not, per pair."""

from __future__ import annotations

import numpy as np
import pandas as pd

# A score is called above its null where the null's one-sided p is at most this; with S shuffles the
# smallest p is 1 / (S + 1), so with 20 shuffles this means "above every shuffle".
NULL_ALPHA = 0.05


def has_label_null(ntps_table: pd.DataFrame) -> bool:
    return "null_mean" in ntps_table.columns and ntps_table["null_mean"].notna().any()


def label_null_summary(ntps_table: pd.DataFrame) -> pd.DataFrame:
    """Per model, dataset and variant with a null, over the (layer, k) of the paper's grid that have
    one: how many, the share above the null (p <= NULL_ALPHA), the median and largest excess over
    the null mean, where the largest is, and the share below the null mean.

    Returns:
        model, dataset, variant, n_shuffles, n_configurations, share_above_null, share_below_null_mean,
        median_excess, max_excess, max_excess_layer, max_excess_k, max_excess_p_value; empty when the
        table has no null.
    """
    columns = [
        "model",
        "dataset",
        "variant",
        "n_shuffles",
        "n_configurations",
        "share_above_null",
        "share_below_null_mean",
        "median_excess",
        "max_excess",
        "max_excess_layer",
        "max_excess_k",
        "max_excess_p_value",
    ]
    if not has_label_null(ntps_table):
        return pd.DataFrame(columns=columns)
    rows = []
    with_null = ntps_table[ntps_table["on_paper_grid"] & ntps_table["null_mean"].notna()]
    for (model, dataset, variant), group in with_null.groupby(["model", "dataset", "variant"], sort=True):
        best = group.loc[group["excess_over_null"].idxmax()]
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "variant": variant,
                "n_shuffles": int(group["n_shuffles"].iloc[0]),
                "n_configurations": len(group),
                "share_above_null": float((group["null_p_value"] <= NULL_ALPHA).mean()),
                "share_below_null_mean": float((group["excess_over_null"] < 0).mean()),
                "median_excess": float(group["excess_over_null"].median()),
                "max_excess": float(best["excess_over_null"]),
                "max_excess_layer": int(best["layer"]),
                "max_excess_k": int(best["k"]),
                "max_excess_p_value": float(best["null_p_value"]),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def label_null_markdown(summary: pd.DataFrame) -> list[str]:
    """Markdown lines: the summary as a table, and which pairs' scores never rise above the null."""
    lines = ["## Is NTPS above its own shuffled-label null?", ""]
    if summary.empty:
        return [*lines, "No null was computed (ntps_scores.label_null.shuffles is 0, or no layer was pooled).", ""]
    shuffles = int(summary["n_shuffles"].iloc[0])
    lines += [
        f"Each score recomputed with the training labels shuffled ({shuffles} shuffles; only meanXY and U change,",
        "the forward pass and V are reused), over the paper's grid of (layer, k) where it is defined (`paper`",
        "only up to the signal rank: beyond it each shuffle would need a d x d eigenproblem of its own). A score",
        f"its own null matches says nothing about the task. Above the null: one-sided p <= {NULL_ALPHA}",
        f"(with {shuffles} shuffles, above every one of them); excess = score - null mean.",
        "",
        "| model | dataset | variant | configurations | share above null | share below null mean | "
        "median excess | largest excess (layer, k, p) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary.itertuples():
        lines.append(
            f"| {row.model} | {row.dataset} | {row.variant} | {row.n_configurations} | {row.share_above_null:.2f} | "
            f"{row.share_below_null_mean:.2f} | {row.median_excess:+.4f} | {row.max_excess:+.4f} "
            f"(L{row.max_excess_layer}, k={row.max_excess_k}, p={row.max_excess_p_value:.3f}) |"
        )
    never = summary[summary["share_above_null"] == 0]
    lines.append("")
    if len(never):
        pairs = ", ".join(f"{row.dataset} `{row.variant}`" for row in never.itertuples())
        lines.append(f"Never above its null anywhere on the grid: {pairs}.")
    else:
        lines.append("Every pair and variant rises above its null somewhere on the grid.")
    return [*lines, ""]


def excess_grid(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(excess over the null mean, null p) as layer x k/d grids of one pair and variant."""
    excess = rows.pivot(index="layer", columns="k_fraction", values="excess_over_null")
    p_values = rows.pivot(index="layer", columns="k_fraction", values="null_p_value")
    return excess, p_values.reindex_like(excess).fillna(np.inf)

"""Matplotlib pieces the report figures share (non-interactive Agg backend)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ntps.reports.correlation_study import ntps_at  # noqa: E402


def empty_figure(message: str) -> plt.Figure:
    """A small figure that says why there is nothing to plot."""
    figure, axis = plt.subplots(figsize=(6, 2))
    axis.axis("off")
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return figure


def scatter_with_fit(axis: plt.Axes, x: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> None:
    """One labelled point per dataset and, as in the paper's figures, a dashed least-squares line."""
    axis.scatter(x, y, color="tab:blue")
    for label, x_value, y_value in zip(labels, x, y):
        axis.annotate(label, (x_value, y_value), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        line = np.linspace(x.min(), x.max(), 2)
        axis.plot(line, slope * line + intercept, "k--", linewidth=1)


def plot_ntps_at_configuration(
    axis: plt.Axes,
    ntps_table: pd.DataFrame,
    configuration: pd.Series,
    variant: str,
    datasets: list[str],
    y: np.ndarray,
    ylabel: str,
    title: Callable[[int, int], str],
    undefined_note: str,
    note_fontsize: float | None = None,
) -> None:
    """The panel the paper's Figures 2 and 3 share: each dataset's NTPS of one variant at the
    configuration a summary row selected (its model, layer, k) against y, as scatter_with_fit,
    titled title(layer, k). A row without a layer (y is the same on every dataset, so r is
    undefined) has no configuration to plot: the panel then holds undefined_note instead
    (note_fontsize None: the default size)."""
    axis.set_ylabel(ylabel)
    if pd.isna(configuration["layer"]):
        axis.set_axis_off()
        axis.text(0.5, 0.5, undefined_note, ha="center", va="center", fontsize=note_fontsize)
        return
    x = ntps_at(ntps_table, configuration["model"], variant, datasets, configuration["layer"], configuration["k_fraction"])
    scatter_with_fit(axis, x, y, datasets)
    axis.set_title(title(int(configuration["layer"]), int(configuration["k"])), fontsize=8)
    axis.set_xlabel(f"NTPS ({variant} variant)")


KIND_COLOURS = {"ntps": "tab:blue", "peer": "tab:purple", "estimator": "tab:green", "trivial": "tab:gray"}


def plot_score_comparison(summary: pd.DataFrame, title: str) -> plt.Figure:
    """A forest plot per model x target (rows) and rank statistic (columns): each score's
    out-of-sample correlation, aligned with the expected sign (NTPS leave-one-dataset-out, the
    others without search), with its bootstrap interval, coloured by kind; the dashed line is the
    best trivial baseline, the bar every score must clear. Targets with no defined r get no row."""
    honest = summary[summary["selection"] != "best_in_sample"]
    honest = honest.assign(
        label=honest["score"].where(honest["selection"] != "leave_one_corpus_out", honest["score"] + " (by corpus)")
    )
    if honest.empty:
        return empty_figure("fewer than 3 datasets per model: no correlation to plot")
    # A target that is the same on every dataset (training accuracy 1.0 everywhere) ranks nothing: no panel.
    panels = [(key, rows) for key, rows in honest.groupby(["model", "target"], sort=True) if rows["r"].notna().any()]
    if not panels:
        return empty_figure("every probe metric is the same on every dataset: no correlation to plot")
    statistics = list(dict.fromkeys(honest["statistic"]))
    n_scores = honest.groupby(["model", "target", "statistic"]).size().max()
    figure, axes = plt.subplots(
        len(panels),
        len(statistics),
        figsize=(4.4 * len(statistics), 0.9 + 0.28 * n_scores * len(panels)),
        squeeze=False,
        constrained_layout=True,
    )
    for row, ((model, target), rows) in enumerate(panels):
        for column, statistic in enumerate(statistics):
            axis = axes[row, column]
            cells = rows[rows["statistic"] == statistic].reset_index(drop=True)
            sign = cells["expected_sign"].to_numpy()
            aligned = sign * cells["r"].to_numpy()
            bounds = np.sort(np.stack([sign * cells["ci_low"], sign * cells["ci_high"]]), axis=0)
            positions = np.arange(len(cells))[::-1]
            for position, value, low, high, kind in zip(positions, aligned, *bounds, cells["score_kind"]):
                colour = KIND_COLOURS[kind]
                axis.plot([low, high], [position, position], color=colour, linewidth=1.5)
                axis.plot(value, position, "o", color=colour)
            trivial = aligned[(cells["score_kind"] == "trivial").to_numpy()]
            if np.isfinite(trivial).any():
                axis.axvline(np.nanmax(trivial), color="tab:gray", linestyle="--", linewidth=1)
            axis.axvline(0, color="black", linewidth=0.5)
            axis.set_yticks(positions, cells["label"], fontsize=7)
            axis.set_xlim(-1.05, 1.05)
            axis.set_title(f"{model}: {target}\n{statistic}, aligned with the expected sign", fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure

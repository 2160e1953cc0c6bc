"""Matplotlib pieces the report figures share (non-interactive Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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

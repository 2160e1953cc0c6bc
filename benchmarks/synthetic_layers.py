"""Synthetic per-layer statistics with the shapes and conditioning of real ones, for the benchmarks.

Only numpy and the project's core: scale_benchmark.py imports this module on a GPU machine that
has torch, transformers and scipy but not the Kedro project's stack.
"""

from __future__ import annotations

import numpy as np

from ntps.core.statistics import LayerStatistics
from ntps.core.subspaces import layer_subspaces


def synthetic_statistics(hidden_size: int, n_classes: int, seed: int) -> LayerStatistics:
    """One layer's statistics (n_texts = 1, so sums are averages) with the shapes and conditioning
    of real ones."""
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.normal(size=hidden_size))
    samples = rng.normal(size=(4 * hidden_size, hidden_size)) * scales
    shifted = rng.normal(size=(4 * hidden_size, hidden_size)) * scales
    mean_xx = samples.T @ samples / len(samples)
    return LayerStatistics.from_matrices(
        mean_xx=mean_xx[None],
        mean_xy=(samples.T @ rng.normal(size=(len(samples), n_classes)) / len(samples))[None],
        cov0=3.0 * mean_xx[None],
        cov1=(samples.T @ shifted / len(samples))[None],
        n_texts=1,
        n_transitions=1,
        class_counts=np.ones(n_classes, dtype=np.int64),
    )


def synthetic_subspaces(hidden_size: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """U and V of synthetic_statistics."""
    subspaces = layer_subspaces(synthetic_statistics(hidden_size, n_classes, seed), ridge=1e-6)
    return subspaces.perception_vectors[0], subspaces.autoregressive_vectors[0]

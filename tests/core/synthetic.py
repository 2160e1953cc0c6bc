"""Synthetic token states, labels and statistics shared by the core tests."""

from __future__ import annotations

import numpy as np
import torch

from ntps.core.statistics import LayerStatistics, StatisticsAccumulator

N_LAYERS, HIDDEN, CLASSES = 3, 7, 3


def random_texts(rng, n_texts, max_length, hidden=HIDDEN, n_layers=N_LAYERS, classes=CLASSES):
    """Per layer, per text, token states of a random length 1..max_length, and labels."""
    lengths = rng.integers(1, max_length + 1, size=n_texts)
    lengths[0] = 1  # a one-token text must reach meanXX/meanXY and not cov0/cov1
    texts = [[rng.normal(size=(length, hidden)) + rng.normal(size=hidden) for length in lengths] for _ in range(n_layers)]
    labels = rng.integers(0, classes, size=n_texts)
    labels[:classes] = np.arange(classes)
    return texts, labels


def padded_batches(texts, labels, batch_size, padding_side, rng):
    """Pad per-text states into (B, T, d) tensors with garbage at padded positions."""
    n_texts = len(labels)
    for start in range(0, n_texts, batch_size):
        index = range(start, min(start + batch_size, n_texts))
        width = max(texts[0][i].shape[0] for i in index)
        mask = torch.zeros(len(index), width, dtype=torch.long)
        layers = []
        for layer_texts in texts:
            states = torch.from_numpy(rng.normal(size=(len(index), width, HIDDEN)) * 1e3)
            for row, i in enumerate(index):
                length = layer_texts[i].shape[0]
                where = slice(width - length, width) if padding_side == "left" else slice(0, length)
                states[row, where] = torch.from_numpy(layer_texts[i])
                mask[row, where] = 1
            layers.append(states)
        yield layers, mask, torch.as_tensor(labels[list(index)])


def accumulate(texts, labels, batch_size=5, padding_side="right", seed=0, classes=CLASSES, products="float64"):
    """Statistics of texts; labels (n,) with `classes` classes, or (n, V) label views with classes[v]."""
    accumulator = StatisticsAccumulator(len(texts), texts[0][0].shape[1], classes, products=products)
    for layers, mask, batch_labels in padded_batches(texts, labels, batch_size, padding_side, np.random.default_rng(seed)):
        accumulator.update(layers, mask, batch_labels)
    return accumulator.result()


def rotated(texts, rotation):
    return [[x @ rotation.T for x in layer_texts] for layer_texts in texts]


def labelled_features(rng, n=400, d=8, c=3):
    """(features (n, d) with class-dependent means, one-hot targets (n, c))."""
    targets = np.eye(c)[rng.integers(0, c, size=n)]
    return rng.normal(size=(n, d)) + 1.5 * targets @ rng.normal(size=(c, d)), targets


def synthetic_moments(rng, n_texts: int, d: int, c: int) -> dict[str, np.ndarray]:
    """Averaged statistics of random token sequences with label-dependent means, scaled as real
    hidden states are (a few large directions)."""
    scales = np.exp(rng.normal(size=d))
    labels = rng.integers(0, c, size=n_texts)
    class_means = rng.normal(size=(c, d))
    moments = {"mean_xx": 0, "mean_xy": 0, "cov0": 0, "cov1": 0}
    for label in labels:
        states = (rng.normal(size=(rng.integers(3, 9), d)) + class_means[label]) * scales
        prefixes = states.cumsum(axis=0)[:-1]
        mean_state = states.mean(axis=0)
        moments["mean_xx"] = moments["mean_xx"] + np.outer(mean_state, mean_state) / n_texts
        moments["mean_xy"] = moments["mean_xy"] + np.outer(mean_state, np.eye(c)[label]) / n_texts
        moments["cov0"] = moments["cov0"] + prefixes.T @ prefixes / n_texts
        moments["cov1"] = moments["cov1"] + prefixes.T @ states[1:] / n_texts
    return moments


def statistics_of(moments: dict[str, np.ndarray]) -> LayerStatistics:
    """One layer's LayerStatistics whose averages (n_texts = 1) are the given moments."""
    return LayerStatistics.from_matrices(
        **{name: value[None] for name, value in moments.items()},
        n_texts=1,
        n_transitions=1,
        class_counts=np.ones(moments["mean_xy"].shape[1], dtype=np.int64),
    )


def planted_pencils() -> dict[str, np.ndarray]:
    """N = cov0 = I and c = d = 12 classes, so U's and V's eigenvectors are the coordinate axes.
    U ranks e1 > e2 > ... > e12. V ranks e1, e2, e3 on top, as U does, but its bottom three are
    e4 < e5 < e6, directions U ranks high, while U's bottom three are e12 < e11 < e10."""
    d = 12
    autoregressive_order = np.array([1, 2, 3, 7, 8, 9, 10, 11, 12, 6, 5, 4]) - 1  # coordinates, top first
    autoregressive_eigenvalues = np.empty(d)
    autoregressive_eigenvalues[autoregressive_order] = np.arange(d, 0, -1.0)
    return {
        "mean_xx": np.eye(d),
        "mean_xy": np.diag(np.sqrt(np.arange(d, 0, -1.0))),
        "cov0": np.eye(d),
        "cov1": np.diag(np.sqrt(autoregressive_eigenvalues)),
    }

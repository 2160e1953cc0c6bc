"""NTPS under shuffled training labels: the score a task's labels earn over labels that carry nothing.

Only the perception side depends on the labels: M = E[m y^T] changes with them, N = E[m m^T] and
V (the next-token side) do not. So one Cholesky factor L of N (ridge included, as the eigen stage)
and one factorization of V serve every shuffle, and every shuffle's M comes from the texts' pooled
states in one product. With Z = L^-1 M (whitened labels):

- label_variance_kept(k) = sum_{j<=k} ||M^T q_j||^2 / ||Z||_F^2, q_j the N-orthonormal basis of
  V's nested spans (core.excess_loss.Whitening, for all shuffles' columns at once);
- U_r, the r perception directions of nonzero eigenvalue, is L^-T W with W the left singular
  vectors of Z of nonzero singular value (the eigenvectors of L^-1 M M^T L^-T, N-orthonormal as
  the eigen stage's), so `signal` and `paper` for k <= r follow from one product with V's
  orthonormal factor.

`paper` for k > r adds eigenvectors of eigenvalue 0, the principal axes of N within null(M^T)
(subspaces.perception_subspace), which change with every labelling's M: its null would cost a
d x d eigenproblem per shuffle, so it is left undefined (NaN) there. `released_code` has no null
here either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ntps.core.errors import NtpsInputError
from ntps.core.excess_loss import Whitening
from ntps.core.linalg import NestedBasis, matmul, nested_prefix_sums, solve_lower_transposed
from ntps.core.probes import one_hot
from ntps.core.subspaces import signal_rank

NULL_VARIANTS = ("paper", "signal", "label_variance_kept")

# How far rounding moves a score in [0, 1]: label_variance_kept is exact to 1.3e-10 on meanXX over
# fourteen decades (tests/core/test_excess_loss.py), paper and signal to about 1e-14.
SCORE_ROUNDING = 1e-9


def label_permutations(n_texts: int, n_shuffles: int, seed: int) -> np.ndarray:
    """(n_shuffles, n_texts) seeded random orderings of the training labels."""
    if n_shuffles < 1:
        raise NtpsInputError(f"the shuffled-label null needs at least 1 shuffle, got {n_shuffles}")
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n_texts) for _ in range(n_shuffles)])


@dataclass
class NullScores:
    """Scores of one layer under each labelling, (n_labellings, d) per variant, k = 1..d along
    the last axis; `paper` is NaN for k beyond the labelling's signal rank."""

    paper: np.ndarray
    signal: np.ndarray
    label_variance_kept: np.ndarray

    def variant(self, name: str) -> np.ndarray:
        return getattr(self, name)


@dataclass
class LabelNull:
    """What the shuffled-label null of a pair needs beyond its statistics and subspaces.

    Attributes:
        pooled_states: layer -> (n, d) mean-pooled states of the training texts the statistics
            summed (layers without an entry get no null); a mapping that reads a layer when it
            is asked for keeps one layer in memory.
        label_ids: (n,) their labels.
        n_classes: c, as in the statistics' meanXY.
        orderings: (S, n) the shuffles (label_permutations).
    """

    pooled_states: Mapping[int, np.ndarray]
    label_ids: np.ndarray
    n_classes: int
    orderings: np.ndarray


def null_columns(observed: np.ndarray, null: np.ndarray) -> dict[str, np.ndarray]:
    """How a layer's scores stand against their null, per k.

    Args:
        observed: (d,) the scores with the true labels.
        null: (S, d) the scores under S shuffles (NaN where undefined).

    Returns:
        null_mean, null_sd (ddof 1), excess_over_null (observed - null_mean) and null_p_value, the
        one-sided empirical p of a score at least as high under shuffled labels, (1 + #{null >=
        observed}) / (S + 1) (Phipson & Smyth 2010); NaN where the null is undefined. A shuffle
        within SCORE_ROUNDING below the observed score counts as at least as high: at k = d every
        labelling keeps all of its label variance, and which of two equal scores rounds higher
        is not evidence.
    """
    defined = np.isfinite(null).all(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(defined, null.mean(axis=0), np.nan)
        sd = np.where(defined, null.std(axis=0, ddof=1) if len(null) > 1 else np.nan, np.nan)
        exceed = (null >= observed[None, :] - SCORE_ROUNDING).sum(axis=0)
    p_value = np.where(defined, (1 + exceed) / (len(null) + 1), np.nan)
    return {"null_mean": mean, "null_sd": sd, "excess_over_null": observed - mean, "null_p_value": p_value}


def _block_sums(values: np.ndarray, blocks: np.ndarray, n_blocks: int) -> np.ndarray:
    """(rows, columns) -> (n_blocks, rows): each row summed over the columns of each block."""
    sums = np.zeros((n_blocks, values.shape[0]))
    np.add.at(sums.T, (slice(None), blocks), values)
    return sums


def shuffled_label_scores(
    pooled_states: np.ndarray,
    label_ids: np.ndarray,
    n_classes: int,
    orderings: np.ndarray,
    whitening: Whitening,
    autoregressive_spans: NestedBasis,
    device: torch.device | None = None,
) -> NullScores:
    """paper (k <= r), signal and label_variance_kept of one layer for the training labels
    reordered by each row of orderings (the identity row gives the true labels' scores).

    Args:
        pooled_states: (n, d) the training texts' mean-pooled states of the layer, the m of meanXX.
        label_ids: (n,) their labels, in [0, n_classes).
        orderings: (S, n) index arrays; labelling s gives text i the label label_ids[orderings[s, i]].
        whitening: the layer's N = E[m m^T] (label-free) and V, factored with the eigen stage's
            ridge (Whitening.of), as the true labels' excess loss uses them.
        autoregressive_spans: the orthonormal basis of V's nested spans, as the true labels'
            scores use it.
        device: None runs scipy on the CPU, a torch.device torch.linalg there.
    """
    pooled_states = np.asarray(pooled_states, dtype=np.float64)
    n, d = pooled_states.shape
    orderings = np.asarray(orderings)
    if orderings.ndim != 2 or orderings.shape[1] != n or len(label_ids) != n:
        raise NtpsInputError(f"orderings {orderings.shape} and labels ({len(label_ids)}) must match the {n} texts")
    if whitening.lower.shape != (d, d):
        raise NtpsInputError(f"the pooled states have {d} dimensions, meanXX {whitening.lower.shape[0]}")
    n_labellings = len(orderings)
    labels = one_hot(np.asarray(label_ids), n_classes)
    # Every labelling's M = E[m y^T] side by side: (d, S * c), block s holding labelling s.
    shuffled_labels = labels[orderings].transpose(1, 0, 2).reshape(n, n_labellings * n_classes)
    mean_xy = matmul(pooled_states.T, shuffled_labels, device) / n
    whitened_labels = whitening.labels(mean_xy)
    whitened = whitened_labels.whitened
    columns_of = np.repeat(np.arange(n_labellings), n_classes)

    explained = np.cumsum(_block_sums(whitened_labels.in_q**2, columns_of, n_labellings), axis=1)
    explainable = _block_sums((whitened**2).sum(axis=0, keepdims=True), columns_of, n_labellings)
    with np.errstate(invalid="ignore", divide="ignore"):
        kept = np.where(explainable > 0, explained / np.where(explainable > 0, explainable, 1), np.nan)

    directions, owners, ranks = [], [], []
    for labelling in range(n_labellings):
        block = slice(labelling * n_classes, (labelling + 1) * n_classes)
        rank = signal_rank(mean_xy[:, block])
        left, _, _ = np.linalg.svd(whitened[:, block], full_matrices=False)
        directions.append(left[:, :rank])
        owners += [labelling] * rank
        ranks.append(rank)
    # U_r = L^-T W: N-orthonormal, descending eigenvalue, as the eigen stage's first r columns.
    perception = solve_lower_transposed(whitening.lower, np.concatenate(directions, axis=1), device)
    alignments = autoregressive_spans.transpose_times(perception) ** 2  # (d, sum r)
    norms = alignments.sum(axis=0)  # ||u_j||^2 in V's basis, as core.ntps divides by them
    owners = np.asarray(owners)
    signal = np.cumsum(_block_sums(alignments, owners, n_labellings), axis=1)
    signal /= _block_sums(norms[None, :], owners, n_labellings)

    paper = np.full((n_labellings, d), np.nan)
    start = 0
    for labelling, rank in enumerate(ranks):
        g = alignments[:rank, start : start + rank]
        paper[labelling, :rank] = nested_prefix_sums(g) / np.cumsum(norms[start : start + rank])
        start += rank
    return NullScores(paper=paper, signal=signal, label_variance_kept=kept)

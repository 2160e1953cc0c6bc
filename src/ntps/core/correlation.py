"""Rank correlation between a score and a downstream metric across datasets, with honest selection.

The paper reports, per model, the Spearman r of the (layer, k) configuration that correlates
best. Chosen on the same datasets it is reported on, that number is optimistic. Here the same
selection is also run leave-one-dataset-out, with bootstrap intervals and permutation p-values
that repeat the selection on every permuted labelling (a max-statistic test), so the reported
p-value accounts for the search over configurations.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from ntps.core.errors import NtpsInputError


def _standardized_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks along the last axis (ties averaged), centred and scaled to unit norm; rows with
    constant values become NaN, as their correlation is undefined."""
    ranks = rankdata(values, axis=-1)
    ranks = ranks - ranks.mean(axis=-1, keepdims=True)
    norms = np.sqrt((ranks**2).sum(axis=-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, ranks / np.where(norms > 0, norms, 1), np.nan)


def spearman(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Spearman r along the last axis, broadcasting leading axes.

    Args:
        scores: (..., n) e.g. (n_configurations, n_datasets).
        targets: (..., n) broadcastable against scores, e.g. (n_datasets,).

    Returns:
        (...) correlations; NaN where either side is constant.
    """
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if scores.shape[-1] != targets.shape[-1]:
        raise NtpsInputError(f"scores and targets cover different datasets: {scores.shape} vs {targets.shape}")
    return (_standardized_ranks(scores) * _standardized_ranks(targets)).sum(axis=-1)


def _best(signed_r: np.ndarray) -> int | None:
    """Index of the largest finite entry (first one on ties), None when there is none."""
    if not np.isfinite(signed_r).any():
        return None
    return int(np.nanargmax(np.where(np.isfinite(signed_r), signed_r, -np.inf)))


@dataclass(frozen=True)
class Selection:
    """configuration: index of the chosen row of scores (None if no row has a defined r);
    r: its Spearman r."""

    configuration: int | None
    r: float


def select_best_configuration(scores: np.ndarray, targets: np.ndarray, sign: int) -> Selection:
    """The paper's choice: the configuration whose r has the expected sign and largest size.

    Args:
        scores: (n_configurations, n_datasets).
        targets: (n_datasets,).
        sign: +1 when a higher score should mean a higher target (accuracy), -1 when lower (MSE).
    """
    r = spearman(scores, targets)
    best = _best(sign * r)
    return Selection(best, float("nan") if best is None else float(r[best]))


def permuted_best_r(scores: np.ndarray, permuted_targets: np.ndarray, sign: int, chunk: int = 64) -> np.ndarray:
    """The selected configuration's sign * r under each permuted labelling (the max statistic
    of a permutation test that accounts for the search).

    Args:
        scores: (n_configurations, n_datasets).
        permuted_targets: (P, n_datasets).

    Returns:
        (P,) max over configurations of sign * r; NaN where no configuration has a defined r.
    """
    ranked_scores = _standardized_ranks(np.asarray(scores, dtype=np.float64))
    ranked_scores = ranked_scores[np.isfinite(ranked_scores).all(axis=1)]
    if not len(ranked_scores):
        return np.full(len(permuted_targets), np.nan)
    best = []
    for start in range(0, len(permuted_targets), chunk):
        ranked_targets = _standardized_ranks(np.asarray(permuted_targets[start : start + chunk], dtype=np.float64))
        best.append((sign * (ranked_targets @ ranked_scores.T)).max(axis=1))
    return np.concatenate(best)


@dataclass(frozen=True)
class LeaveOneOutResult:
    """configurations: (n_datasets,) the configuration chosen without dataset j (-1 if none);
    held_out_scores: (n_datasets,) dataset j's score at that configuration;
    r: Spearman r of held_out_scores against the targets."""

    configurations: np.ndarray
    held_out_scores: np.ndarray
    r: float


def leave_one_dataset_out(scores: np.ndarray, targets: np.ndarray, sign: int) -> LeaveOneOutResult:
    """For each dataset j, select the configuration on the other datasets only, and read dataset
    j's score there; the out-of-fold scores are then correlated with the targets.

    Args:
        scores: (n_configurations, n_datasets), n_datasets >= 3.
        targets: (n_datasets,).
        sign: +1 or -1, as select_best_configuration.
    """
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    n_datasets = scores.shape[1]
    if n_datasets < 3:
        raise NtpsInputError(f"leave-one-dataset-out needs at least 3 datasets, got {n_datasets}")
    configurations = np.full(n_datasets, -1)
    held_out = np.full(n_datasets, np.nan)
    for held in range(n_datasets):
        others = np.arange(n_datasets) != held
        chosen = select_best_configuration(scores[:, others], targets[others], sign).configuration
        if chosen is not None:
            configurations[held] = chosen
            held_out[held] = scores[chosen, held]
    r = float(spearman(held_out, targets)) if np.isfinite(held_out).all() else float("nan")
    return LeaveOneOutResult(configurations, held_out, r)


def bootstrap_interval(
    scores: np.ndarray, targets: np.ndarray, n_resamples: int, confidence: float, seed: int
) -> tuple[float, float, int]:
    """Percentile interval of Spearman r over datasets resampled with replacement.

    Args:
        scores, targets: (n_datasets,) paired values.

    Returns:
        (low, high, n_defined): resamples where r is undefined (all one dataset, ties only)
        are dropped; n_defined says how many remained. NaN bounds if none did.
    """
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if not 0 < confidence < 1:
        raise NtpsInputError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, len(scores), size=(n_resamples, len(scores)))
    r = spearman(scores[resamples], targets[resamples])
    r = r[np.isfinite(r)]
    if not r.size:
        return float("nan"), float("nan"), 0
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(r, [tail, 100 - tail])
    return float(low), float(high), int(r.size)


def target_permutations(n_datasets: int, n_permutations: int, seed: int) -> tuple[np.ndarray, bool]:
    """Orderings of the datasets to permute the targets with.

    Returns:
        ((P, n_datasets) index array, exact): every permutation when n_datasets! <= n_permutations
        (exact=True, the identity included), else n_permutations random ones.
    """
    if math.factorial(n_datasets) <= n_permutations:
        return np.array(list(itertools.permutations(range(n_datasets)))), True
    rng = np.random.default_rng(seed)
    return np.array([rng.permutation(n_datasets) for _ in range(n_permutations)]), False


def permutation_p_value(observed: float, permuted: np.ndarray, exact: bool) -> float:
    """One-sided p of a statistic where larger is more extreme.

    permuted: the statistic under each permutation of target_permutations; an exact enumeration
    already holds the observed labelling, a random one gets it added (Phipson & Smyth 2010).
    """
    if not np.isfinite(observed):
        return float("nan")
    exceed = int(np.sum(np.nan_to_num(permuted, nan=-np.inf) >= observed - 1e-12))
    return exceed / len(permuted) if exact else (exceed + 1) / (len(permuted) + 1)

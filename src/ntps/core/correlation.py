"""Rank correlation between a score and a downstream metric across datasets, with honest selection.

Three rank statistics (STATISTICS): Spearman r, as the paper; Kendall's tau-b; and weighted tau
(Vigna's, scipy.stats.weightedtau's default), which counts agreement among the top-ranked datasets
most, what a user choosing a model or task cares about.

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

STATISTICS = ("spearman", "kendall", "weighted_tau")


def _standardized_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks along the last axis (ties averaged), centred and scaled to unit norm; rows with
    constant values become NaN, as their correlation is undefined."""
    ranks = rankdata(values, axis=-1)
    ranks = ranks - ranks.mean(axis=-1, keepdims=True)
    return _unit_rows(ranks)


def _unit_rows(values: np.ndarray) -> np.ndarray:
    norms = np.sqrt((values**2).sum(axis=-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, values / np.where(norms > 0, norms, 1), np.nan)


def _pair_signs(values: np.ndarray) -> np.ndarray:
    """(..., n) -> (..., n (n - 1) / 2): sign(values_i - values_j) for every pair i < j."""
    first, second = np.triu_indices(values.shape[-1], k=1)
    return np.sign(values[..., first] - values[..., second])


def _standardized_pair_signs(values: np.ndarray) -> np.ndarray:
    """Pair signs scaled to unit norm: their dot product is Kendall's tau-b (tied pairs count in
    neither side's norm); NaN rows for constant values."""
    return _unit_rows(_pair_signs(values))


# Spearman r and Kendall's tau-b are dot products of a per-side transform, so the search over
# configurations under many permutations is one matrix product.
_TRANSFORMS = {"spearman": _standardized_ranks, "kendall": _standardized_pair_signs}


def _check_statistic(statistic: str) -> None:
    if statistic not in STATISTICS:
        raise NtpsInputError(f"rank statistic must be one of {STATISTICS}, got {statistic!r}")


def _hyperbolic_pair_weights(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Vigna's additive hyperbolic weights of every pair i < j: 1 / (rank_i + 1) + 1 / (rank_j + 1),
    rank 0 the largest by (primary, then secondary), as scipy.stats.weightedtau ranks."""
    n = primary.shape[-1]
    ascending = np.lexsort((secondary, primary), axis=-1)  # stable, ties in both by position
    rank = np.empty_like(ascending)
    np.put_along_axis(rank, ascending, np.broadcast_to(np.arange(n - 1, -1, -1), ascending.shape), axis=-1)
    weights = 1.0 / (rank + 1.0)
    first, second = np.triu_indices(n, k=1)
    return weights[..., first] + weights[..., second]


def _correlation_or_nan(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator clipped to [-1, 1] (rounding can step an ulp outside), NaN where the
    denominator is 0 (a side that ranks nothing)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, np.clip(numerator / np.where(denominator > 0, denominator, 1), -1, 1), np.nan)


def _weighted_tau_one_way(x_signs, y_signs, weights) -> np.ndarray:
    numerator = (weights * x_signs * y_signs).sum(axis=-1)
    denominator = np.sqrt((weights * x_signs**2).sum(axis=-1) * (weights * y_signs**2).sum(axis=-1))
    return _correlation_or_nan(numerator, denominator)


def _has_ties(values: np.ndarray) -> np.ndarray:
    """(..., n) -> (...): whether a row holds some value twice."""
    return (np.diff(np.sort(values, axis=-1), axis=-1) == 0).any(axis=-1)


def _one_way_products(other_signs: np.ndarray, ranked_signs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One-way weighted tau of every row of the ranked side (B, m), whose weights (B, m) do not
    depend on the other side, with every row of the other side (A, m): (A, B) by matrix products."""
    numerator = other_signs @ (weights * ranked_signs).T
    denominator = np.sqrt((weights * ranked_signs**2).sum(axis=1))[None, :] * np.sqrt(other_signs**2 @ weights.T)
    return _correlation_or_nan(numerator, denominator)


def _one_way_table(ranked: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The one-way weighted tau, weighted by the ranking of each row of ranked (R, n), with every row
    of other (O, n), as (O, R).

    A row without ties ranks by its own values alone, so its taus with every row of other are a
    matrix product; only a tied row (its ties broken by the other side) takes the general path. A
    constant row ranks nothing: its taus stay NaN without either path's cost, and those with a
    constant row of other are NaN through their zero denominator.
    """
    ranked_signs, other_signs = _pair_signs(ranked), _pair_signs(other)
    table = np.full((len(other), len(ranked)), np.nan)
    constant = (ranked == ranked[:, :1]).all(axis=1)
    tied = _has_ties(ranked) & ~constant
    untied = ~tied & ~constant
    untied_rows = ranked[untied]
    weights = _hyperbolic_pair_weights(untied_rows, np.zeros_like(untied_rows))
    table[:, untied] = _one_way_products(other_signs, ranked_signs[untied], weights)
    if tied.any():
        tied_pairs = np.broadcast_arrays(ranked[tied][None], other[:, None])
        table[:, tied] = _weighted_tau_one_way(
            ranked_signs[tied][None], other_signs[:, None], _hyperbolic_pair_weights(*tied_pairs)
        )
    return table


def _weighted_tau_table(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """weighted_tau of every row of scores (C, n) with every row of targets (P, n), as (P, C): the
    mean of the one-way taus weighted by the ranking of scores and by that of targets."""
    return (_one_way_table(scores, targets) + _one_way_table(targets, scores).T) / 2


def weighted_tau(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """scipy.stats.weightedtau's default (additive hyperbolic weights, rank=True: the mean of the
    tau weighted by the ranking of scores and the one weighted by the ranking of targets) along the
    last axis, broadcasting leading axes: agreement at the top counts most.

    Args:
        scores, targets: (..., n) broadcastable.

    Returns:
        (...) correlations; NaN where either side is constant.
    """
    scores, targets = np.broadcast_arrays(np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64))
    x_signs, y_signs = _pair_signs(scores), _pair_signs(targets)
    by_scores = _weighted_tau_one_way(x_signs, y_signs, _hyperbolic_pair_weights(scores, targets))
    by_targets = _weighted_tau_one_way(x_signs, y_signs, _hyperbolic_pair_weights(targets, scores))
    return (by_scores + by_targets) / 2


def rank_correlation(scores: np.ndarray, targets: np.ndarray, statistic: str = "spearman") -> np.ndarray:
    """Spearman r, Kendall's tau-b or weighted tau along the last axis, broadcasting leading axes.

    Args:
        scores: (..., n) e.g. (n_configurations, n_datasets).
        targets: (..., n) broadcastable against scores, e.g. (n_datasets,).
        statistic: one of STATISTICS.

    Returns:
        (...) correlations; NaN where either side is constant.
    """
    _check_statistic(statistic)
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if scores.shape[-1] != targets.shape[-1]:
        raise NtpsInputError(f"scores and targets cover different datasets: {scores.shape} vs {targets.shape}")
    if statistic == "weighted_tau":
        return weighted_tau(scores, targets)
    transform = _TRANSFORMS[statistic]
    # A dot product of unit vectors can land an ulp outside [-1, 1].
    return np.clip((transform(scores) * transform(targets)).sum(axis=-1), -1, 1)


def spearman(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Spearman r along the last axis (rank_correlation's default)."""
    return rank_correlation(scores, targets, "spearman")


def _comparable(r: np.ndarray, sign: int) -> np.ndarray:
    """sign * r rounded to 12 decimals, -inf where undefined: configurations whose r ties (common
    with few datasets) compare equal however r was summed, so every selection keeps the first."""
    return np.where(np.isfinite(r), np.round(sign * r, 12), -np.inf)


def _best(r: np.ndarray, sign: int) -> int | None:
    """Index of the configuration with the largest sign * r (first one on ties), None when no r is defined."""
    if not np.isfinite(r).any():
        return None
    return int(np.argmax(_comparable(r, sign)))


@dataclass(frozen=True)
class Selection:
    """configuration: index of the chosen row of scores (None if no row has a defined r);
    r: its Spearman r."""

    configuration: int | None
    r: float


def select_best_configuration(scores: np.ndarray, targets: np.ndarray, sign: int, statistic: str = "spearman") -> Selection:
    """The paper's choice: the configuration whose r has the expected sign and largest size.

    Args:
        scores: (n_configurations, n_datasets).
        targets: (n_datasets,).
        sign: +1 when a higher score should mean a higher target (accuracy), -1 when lower (MSE).
        statistic: the rank correlation searched (STATISTICS).
    """
    r = rank_correlation(scores, targets, statistic)
    best = _best(r, sign)
    return Selection(best, float("nan") if best is None else float(r[best]))


def _permuted_correlations(scores: np.ndarray, permuted_targets: np.ndarray, statistic: str):
    """(chunk, n_configurations) correlations of every configuration with a chunk of the permuted
    targets at a time, in order; Spearman and Kendall transform the scores once."""
    _check_statistic(statistic)
    scores = np.asarray(scores, dtype=np.float64)
    permuted_targets = np.asarray(permuted_targets, dtype=np.float64)
    n_pairs = scores.shape[1] * (scores.shape[1] - 1) // 2
    chunk = max(1, 2_000_000 // max(1, len(scores) * n_pairs))
    if statistic in _TRANSFORMS:
        transformed = _TRANSFORMS[statistic](scores).T
        for start in range(0, len(permuted_targets), chunk):
            yield _TRANSFORMS[statistic](permuted_targets[start : start + chunk]) @ transformed
    else:
        for start in range(0, len(permuted_targets), chunk):
            yield _weighted_tau_table(scores, permuted_targets[start : start + chunk])


def permuted_best_r(scores: np.ndarray, permuted_targets: np.ndarray, sign: int, statistic: str = "spearman") -> np.ndarray:
    """The selected configuration's sign * r under each permuted labelling (the max statistic
    of a permutation test that accounts for the search).

    Args:
        scores: (n_configurations, n_datasets).
        permuted_targets: (P, n_datasets).

    Returns:
        (P,) max over configurations of sign * r; NaN where no configuration has a defined r.
    """
    best = [
        np.where(np.isfinite(r).any(axis=1), np.where(np.isfinite(r), sign * r, -np.inf).max(axis=1), np.nan)
        for r in _permuted_correlations(scores, permuted_targets, statistic)
    ]
    return np.concatenate(best) if best else np.empty(0)


def _folds(n_datasets: int, groups: np.ndarray | None) -> list[np.ndarray]:
    """Boolean masks of the held-out datasets of each fold: one dataset at a time, or one group
    (e.g. the label views of one corpus) at a time; at least 3 folds."""
    labels = np.arange(n_datasets) if groups is None else np.asarray(groups)
    if len(labels) != n_datasets:
        raise NtpsInputError(f"groups name {len(labels)} datasets, the scores cover {n_datasets}")
    folds = [labels == label for label in dict.fromkeys(labels.tolist())]
    if len(folds) < 3:
        raise NtpsInputError(f"leave-one-out needs at least 3 datasets or groups, got {len(folds)}")
    return folds


def permuted_leave_one_out_r(
    scores: np.ndarray,
    permuted_targets: np.ndarray,
    sign: int,
    statistic: str = "spearman",
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """leave_one_dataset_out(scores, targets, sign, statistic, groups).r for every row of
    permuted_targets, vectorized over the rows: the null distribution of the out-of-sample r,
    selection included.

    Args:
        scores: (n_configurations, n_datasets).
        permuted_targets: (P, n_datasets).
        groups: see leave_one_dataset_out.

    Returns:
        (P,) r; NaN where some fold had no configuration with a defined r.
    """
    scores = np.asarray(scores, dtype=np.float64)
    permuted_targets = np.asarray(permuted_targets, dtype=np.float64)
    held_out = np.full(permuted_targets.shape, np.nan)
    for held in _folds(scores.shape[1], groups):
        chosen = []
        for r in _permuted_correlations(scores[:, ~held], permuted_targets[:, ~held], statistic):
            best = _comparable(r, sign).argmax(axis=1)
            defined = np.isfinite(r).any(axis=1)
            chosen.append(np.where(defined[:, None], scores[best][:, held], np.nan))
        held_out[:, held] = np.concatenate(chosen)
    r = rank_correlation(held_out, permuted_targets, statistic)
    return np.where(np.isfinite(held_out).all(axis=1), r, np.nan)


@dataclass(frozen=True)
class LeaveOneOutResult:
    """configurations: (n_datasets,) the configuration chosen without dataset j's fold (-1 if none);
    held_out_scores: (n_datasets,) dataset j's score at that configuration;
    r: Spearman r of held_out_scores against the targets."""

    configurations: np.ndarray
    held_out_scores: np.ndarray
    r: float


def leave_one_dataset_out(
    scores: np.ndarray, targets: np.ndarray, sign: int, statistic: str = "spearman", groups: np.ndarray | None = None
) -> LeaveOneOutResult:
    """For each dataset j, select the configuration on the other datasets only, and read dataset
    j's score there; the out-of-fold scores are then correlated with the targets. With groups,
    a whole group is held out at a time: its datasets are scored at the configuration chosen on the
    other groups (leave one corpus out, when label views of one corpus are not independent).

    Args:
        scores: (n_configurations, n_datasets).
        targets: (n_datasets,).
        sign: +1 or -1, as select_best_configuration.
        statistic: the rank correlation searched and reported (STATISTICS).
        groups: (n_datasets,) a group label per dataset, at least 3 groups; None: every dataset
            its own (at least 3 datasets).
    """
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    n_datasets = scores.shape[1]
    configurations = np.full(n_datasets, -1)
    held_out = np.full(n_datasets, np.nan)
    for held in _folds(n_datasets, groups):
        chosen = select_best_configuration(scores[:, ~held], targets[~held], sign, statistic).configuration
        if chosen is not None:
            configurations[held] = chosen
            held_out[held] = scores[chosen, held]
    r = float(rank_correlation(held_out, targets, statistic)) if np.isfinite(held_out).all() else float("nan")
    return LeaveOneOutResult(configurations, held_out, r)


def bootstrap_interval(
    scores: np.ndarray, targets: np.ndarray, n_resamples: int, confidence: float, seed: int, statistic: str = "spearman"
) -> tuple[float, float, int]:
    """Percentile interval of a rank correlation (STATISTICS) over datasets resampled with replacement.

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
    r = rank_correlation(scores[resamples], targets[resamples], statistic)
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

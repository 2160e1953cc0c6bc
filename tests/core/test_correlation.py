"""ntps.core.correlation: rank correlation, selection, permutation and bootstrap statistics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr, weightedtau

from ntps.core.correlation import (
    STATISTICS,
    bootstrap_interval,
    leave_one_dataset_out,
    permutation_p_value,
    permuted_best_r,
    permuted_leave_one_out_r,
    rank_correlation,
    select_best_configuration,
    spearman,
    target_permutations,
)
from ntps.core.errors import NtpsInputError


def test_spearman_equals_scipy_with_ties_and_is_nan_for_constants():
    rng = np.random.default_rng(9)
    scores = rng.integers(0, 4, size=(50, 7)).astype(float)  # many ties
    targets = rng.normal(size=7)
    expected = [spearmanr(row, targets).statistic for row in scores]
    np.testing.assert_allclose(spearman(scores, targets), expected, atol=1e-12)
    paired = rng.normal(size=(20, 7))
    np.testing.assert_allclose(
        spearman(scores[:20], paired), [spearmanr(a, b).statistic for a, b in zip(scores, paired)], atol=1e-12
    )
    assert np.isnan(spearman(np.ones(7), targets))


@pytest.mark.parametrize("statistic, reference", [("kendall", kendalltau), ("weighted_tau", weightedtau)])
def test_kendall_and_weighted_tau_equal_scipy_with_ties_and_are_nan_for_constants(statistic, reference):
    rng = np.random.default_rng(13)
    for trial in range(200):
        n = int(rng.integers(3, 12))
        scores = rng.integers(0, 4, size=n).astype(float) if trial % 2 else rng.normal(size=n)
        targets = rng.integers(0, 3, size=n).astype(float) if trial % 3 == 0 else rng.normal(size=n)
        expected = reference(scores, targets).statistic
        np.testing.assert_allclose(rank_correlation(scores, targets, statistic), expected, atol=1e-12, equal_nan=True)
    many, targets = rng.normal(size=(30, 7)), rng.normal(size=7)
    np.testing.assert_allclose(
        rank_correlation(many, targets, statistic), [reference(row, targets).statistic for row in many], atol=1e-12
    )
    assert np.isnan(rank_correlation(np.ones(7), targets, statistic))
    with pytest.raises(NtpsInputError, match="rank statistic"):
        rank_correlation(many, targets, "pearson")


def test_weighted_tau_counts_agreement_at_the_top_most():
    targets = np.arange(8.0)
    swapped_top, swapped_bottom = targets.copy(), targets.copy()
    swapped_top[[6, 7]], swapped_bottom[[0, 1]] = swapped_top[[7, 6]], swapped_bottom[[1, 0]]
    assert rank_correlation(swapped_top, targets, "kendall") == rank_correlation(swapped_bottom, targets, "kendall")
    assert rank_correlation(swapped_top, targets, "weighted_tau") < rank_correlation(swapped_bottom, targets, "weighted_tau")


def test_best_configuration_follows_the_expected_sign():
    targets = np.array([0.1, 0.5, 0.3, 0.9])
    scores = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, 3, 2, 4.0]])
    assert select_best_configuration(scores, targets, sign=1).configuration == 2
    assert select_best_configuration(scores, -targets, sign=-1).configuration == 2
    assert select_best_configuration(np.ones((2, 4)), targets, 1).configuration is None


def test_leave_one_out_never_selects_with_the_held_out_dataset():
    targets = np.arange(5.0)
    honest = [2, 0, 1, 4, 3]  # r = 0.6 on all five datasets
    spurious = [0, 0, 0, 0, 5]  # r = 0.71, but only through dataset 4: constant without it
    scores = np.array([honest, spurious], dtype=float)
    assert select_best_configuration(scores, targets, 1).configuration == 1
    result = leave_one_dataset_out(scores, targets, 1)
    assert result.configurations[4] == 0 and result.held_out_scores[4] == 3
    # Whatever the held-out dataset's scores are, its fold chooses the same configuration.
    rng = np.random.default_rng(10)
    many = rng.normal(size=(40, 6))
    many_targets = rng.normal(size=6)
    reference = leave_one_dataset_out(many, many_targets, -1)
    for held in range(6):
        changed = many.copy()
        changed[:, held] = rng.normal(size=40) * 100
        assert leave_one_dataset_out(changed, many_targets, -1).configurations[held] == reference.configurations[held]
        others = np.arange(6) != held
        assert (
            reference.configurations[held]
            == select_best_configuration(many[:, others], many_targets[others], -1).configuration
        )
    with pytest.raises(NtpsInputError, match="at least 3 datasets"):
        leave_one_dataset_out(scores[:, :2], targets[:2], 1)


def test_permutations_are_exhaustive_when_few_and_p_values_pay_for_the_search():
    orderings, exact = target_permutations(4, 2000, seed=0)
    assert exact and len(orderings) == 24 and len({tuple(row) for row in orderings}) == 24
    orderings, exact = target_permutations(8, 500, seed=0)
    assert not exact and orderings.shape == (500, 8)
    targets = np.arange(5.0)
    perfect = targets * 2 + 1
    all_orders, _ = target_permutations(5, 2000, seed=0)
    assert permutation_p_value(1.0, spearman(perfect, targets[all_orders]), exact=True) == pytest.approx(1 / 120)
    # A search over many random configurations finds a strong r by chance: the max-statistic p
    # of the selected one is far larger than the naive p of that configuration alone.
    rng = np.random.default_rng(11)
    noise = rng.normal(size=(300, 5))
    best = select_best_configuration(noise, targets, 1)
    naive = permutation_p_value(best.r, spearman(noise[best.configuration], targets[all_orders]), exact=True)
    corrected = permutation_p_value(best.r, permuted_best_r(noise, targets[all_orders], 1), exact=True)
    assert best.r >= 0.9 and naive <= 0.05 and corrected > 0.5
    for statistic in STATISTICS:
        brute_force = [max(rank_correlation(noise, targets[order], statistic)) for order in itertools.islice(all_orders, 10)]
        searched = permuted_best_r(noise, targets[all_orders[:10]], 1, statistic)
        np.testing.assert_allclose(searched, brute_force, atol=1e-12)


def test_bootstrap_interval_is_seeded_bounded_and_contains_a_clear_r():
    rng = np.random.default_rng(12)
    scores = np.arange(12.0)
    targets = scores + rng.normal(scale=2, size=12)
    low, high, defined = bootstrap_interval(scores, targets, 500, 0.95, seed=1)
    assert (low, high, defined) == bootstrap_interval(scores, targets, 500, 0.95, seed=1)
    assert -1 <= low <= float(spearman(scores, targets)) <= high <= 1 and defined > 450
    with pytest.raises(NtpsInputError, match="confidence"):
        bootstrap_interval(scores, targets, 10, 1.5, seed=0)


@pytest.mark.parametrize("statistic", STATISTICS)
def test_bootstrap_interval_covers_the_planted_value_in_most_samples(statistic):
    """Samples of 15 (score, target) pairs from a bivariate normal with correlation 0.6: the
    statistic's expected value at that size is estimated from 4,000 other samples; the 95%
    percentile intervals of most of 100 samples cover it."""
    rng = np.random.default_rng(14)
    covariance = [[1.0, 0.6], [0.6, 1.0]]
    planted = rng.multivariate_normal([0, 0], covariance, size=(4000, 15))
    true_value = float(np.mean(rank_correlation(planted[..., 0], planted[..., 1], statistic)))
    covered = 0
    for sample in rng.multivariate_normal([0, 0], covariance, size=(100, 15)):
        low, high, _ = bootstrap_interval(sample[:, 0], sample[:, 1], 1000, 0.95, seed=0, statistic=statistic)
        covered += low <= true_value <= high
    assert covered >= 80


@pytest.mark.parametrize("statistic", STATISTICS)
def test_the_vectorized_leave_one_out_null_equals_the_selection_repeated_per_permutation(statistic):
    rng = np.random.default_rng(15)
    scores = rng.normal(size=(40, 6))
    scores[3] = 1.0  # a constant configuration is never chosen
    scores[5:10] = rng.integers(0, 3, size=(5, 6))  # tied correlations: the first configuration wins
    permuted = rng.normal(size=(50, 6))
    expected = [leave_one_dataset_out(scores, targets, -1, statistic).r for targets in permuted]
    np.testing.assert_allclose(permuted_leave_one_out_r(scores, permuted, -1, statistic), expected, atol=1e-12)


@pytest.mark.parametrize("targets", [np.arange(8.0), np.array([0, 0, 1, 1, 2, 3, 3, 5.0]), np.ones(8)])
def test_the_searched_weighted_tau_equals_it_row_by_row_with_tied_and_constant_rows(targets):
    """The search takes matrix products for untied rows and the general path for tied ones."""
    rng = np.random.default_rng(16)
    scores = rng.normal(size=(60, 8))
    scores[:10] = rng.integers(0, 3, size=(10, 8))
    scores[10] = 1.0
    permuted = np.stack([rng.permutation(targets) for _ in range(30)])
    brute_force = [np.nanmax(rank_correlation(scores, row, "weighted_tau"), initial=-np.inf) for row in permuted]
    expected = np.where(np.isinf(brute_force), np.nan, brute_force)
    np.testing.assert_allclose(permuted_best_r(scores, permuted, 1, "weighted_tau"), expected, atol=1e-12)


@pytest.mark.parametrize("statistic", STATISTICS)
def test_leaving_one_group_out_scores_a_groups_datasets_at_the_configuration_chosen_without_the_group(statistic):
    rng = np.random.default_rng(17)
    scores, targets = rng.normal(size=(40, 7)), rng.normal(size=7)
    groups = np.array(["a", "a", "b", "c", "c", "c", "d"])
    result = leave_one_dataset_out(scores, targets, 1, statistic, groups)
    for group in "abcd":
        held = groups == group
        chosen = select_best_configuration(scores[:, ~held], targets[~held], 1, statistic).configuration
        assert (result.configurations[held] == chosen).all()
        np.testing.assert_array_equal(result.held_out_scores[held], scores[chosen, held])
    # Every dataset its own group is plain leave-one-dataset-out.
    singletons = leave_one_dataset_out(scores, targets, 1, statistic, np.arange(7))
    assert singletons.r == leave_one_dataset_out(scores, targets, 1, statistic).r
    permuted = np.stack([rng.permutation(targets) for _ in range(20)])
    expected = [leave_one_dataset_out(scores, row, 1, statistic, groups).r for row in permuted]
    np.testing.assert_allclose(permuted_leave_one_out_r(scores, permuted, 1, statistic, groups), expected, atol=1e-12)
    with pytest.raises(NtpsInputError, match="at least 3 datasets or groups"):
        leave_one_dataset_out(scores, targets, 1, statistic, np.array(["a"] * 4 + ["b"] * 3))

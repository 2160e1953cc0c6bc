"""Probes, transferability baselines and the correlation statistics, against references and properties."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal, spearmanr
from sklearn.linear_model import Ridge

from ntps.core.correlation import (
    bootstrap_interval,
    leave_one_dataset_out,
    permutation_p_value,
    permuted_best_r,
    select_best_configuration,
    spearman,
    target_permutations,
)
from ntps.core.errors import NtpsInputError
from ntps.core.probes import (
    fit_least_squares_probe,
    fit_logistic_probe,
    h_score,
    log_maximum_evidence,
    one_hot,
)
from ntps.reports.correlation_study import correlation_summary, markdown_report


def linear_classification(n: int, d: int, c: int, seed: int, noise: float = 0.0):
    """Features and labels that are the argmax of a linear function of the features."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, d))
    labels = np.argmax(features @ rng.normal(size=(d, c)) + noise * rng.normal(size=(n, c)), axis=1)
    return features, labels


def test_ols_probe_equals_lstsq_with_an_intercept_column():
    features, labels = linear_classification(80, 6, 3, seed=0)
    targets = one_hot(labels, 3)
    probe = fit_least_squares_probe(features, targets)
    design = np.hstack([features, np.ones((80, 1))])
    solution = np.linalg.lstsq(design, targets, rcond=None)[0]
    np.testing.assert_allclose(probe.weights, solution[:-1], atol=1e-10)
    np.testing.assert_allclose(probe.bias, solution[-1], atol=1e-10)
    residual = targets - design @ solution
    assert probe.training_mse == pytest.approx((residual**2).sum() / 80, rel=1e-10)


def test_ridge_probe_equals_scikit_learn_ridge_and_ols_fits_perfectly_when_n_le_d():
    features, labels = linear_classification(40, 8, 3, seed=1)
    targets = one_hot(labels, 3)
    probe = fit_least_squares_probe(features, targets, ridge=2.5)
    reference = Ridge(alpha=2.5).fit(features, targets)
    np.testing.assert_allclose(probe.weights, reference.coef_.T, atol=1e-10)
    np.testing.assert_allclose(probe.bias, reference.intercept_, atol=1e-10)
    assert fit_least_squares_probe(features[:6], targets[:6]).training_mse < 1e-20
    with pytest.raises(NtpsInputError, match="ridge must be non-negative"):
        fit_least_squares_probe(features, targets, ridge=-1)


def test_logistic_probe_reports_train_and_held_out_accuracy():
    features, labels = linear_classification(300, 5, 3, seed=2)
    result = fit_logistic_probe(features[:200], labels[:200], features[200:], labels[200:], inverse_regularization=100.0)
    assert result.converged
    assert result.train_accuracy > 0.95 and result.test_accuracy > 0.9
    noise = np.random.default_rng(3).normal(size=(300, 5))
    chance = fit_logistic_probe(noise[:200], labels[:200], noise[200:], labels[200:])
    assert chance.test_accuracy < 0.6
    with pytest.raises(NtpsInputError, match="single label"):
        fit_logistic_probe(features[:10], np.zeros(10, int), features[:0], labels[:0])


def test_logme_is_the_maximized_evidence_and_prefers_real_labels_to_shuffled():
    features, labels = linear_classification(150, 6, 3, seed=4, noise=0.3)
    result = log_maximum_evidence(features, labels)
    targets = one_hot(labels, 3)
    # The evidence of y = F w + noise, w ~ N(0, I/alpha), noise ~ N(0, I/beta), is N(0, I/beta + F F^T/alpha).
    evidences = [
        multivariate_normal(np.zeros(150), np.eye(150) / beta + features @ features.T / alpha).logpdf(targets[:, column])
        for column, (alpha, beta) in enumerate(zip(result.alphas, result.betas))
    ]
    assert result.score == pytest.approx(np.mean(evidences) / 150, rel=1e-9)
    # ... and alpha, beta are a maximum: nudging either lowers it.
    alpha, beta = result.alphas[0], result.betas[0]
    for scale_alpha, scale_beta in ((1.2, 1), (1 / 1.2, 1), (1, 1.2), (1, 1 / 1.2)):
        nudged = multivariate_normal(
            np.zeros(150), np.eye(150) / (beta * scale_beta) + features @ features.T / (alpha * scale_alpha)
        ).logpdf(targets[:, 0])
        assert nudged < evidences[0]
    shuffled = np.random.default_rng(5).permutation(labels)
    assert result.score > log_maximum_evidence(features, shuffled).score + 0.05


def literal_h_score(features, labels):
    covariance = np.cov(features.T, bias=True)
    mean = features.mean(axis=0)
    between = sum(
        (labels == label).mean()
        * np.outer(features[labels == label].mean(axis=0) - mean, features[labels == label].mean(axis=0) - mean)
        for label in np.unique(labels)
    )
    return np.trace(np.linalg.inv(covariance) @ between)


def test_h_score_matches_its_definition_is_bounded_and_invariant_to_invertible_maps():
    features, labels = linear_classification(200, 5, 4, seed=6, noise=1.0)
    score = h_score(features, labels)
    assert score == pytest.approx(literal_h_score(features, labels), rel=1e-9)
    assert 0 <= score <= 4 - 1 + 1e-9
    mixing = np.random.default_rng(7).normal(size=(5, 5))
    assert h_score(features @ mixing + 3.0, labels) == pytest.approx(score, rel=1e-8)
    assert h_score(features, labels) > h_score(features, np.random.default_rng(8).permutation(labels))


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
    brute_force = [max(spearman(noise, targets[order])) for order in itertools.islice(all_orders, 10)]
    np.testing.assert_allclose(permuted_best_r(noise, targets[all_orders[:10]], 1), brute_force, atol=1e-12)


def test_bootstrap_interval_is_seeded_bounded_and_contains_a_clear_r():
    rng = np.random.default_rng(12)
    scores = np.arange(12.0)
    targets = scores + rng.normal(scale=2, size=12)
    low, high, defined = bootstrap_interval(scores, targets, 500, 0.95, seed=1)
    assert (low, high, defined) == bootstrap_interval(scores, targets, 500, 0.95, seed=1)
    assert -1 <= low <= float(spearman(scores, targets)) <= high <= 1 and defined > 450
    with pytest.raises(NtpsInputError, match="confidence"):
        bootstrap_interval(scores, targets, 10, 1.5, seed=0)


def synthetic_tables(n_datasets: int, seed: int):
    """An NTPS table where layer 1 at k=2 tracks probe accuracy, and matching probe metrics."""
    rng = np.random.default_rng(seed)
    accuracy = rng.uniform(0.5, 1.0, size=n_datasets)
    rows, probes = [], []
    for index in range(n_datasets):
        dataset = f"set{index}"
        for variant, layer, k in itertools.product(("paper", "signal"), range(3), range(1, 5)):
            value = accuracy[index] if (layer, k) == (1, 2) else rng.uniform()
            rows.append(
                {"model": "m", "dataset": dataset, "layer": layer, "k": k, "k_fraction": k / 4, "on_paper_grid": True}
                | {"variant": variant, "signal_rank": 1, "ntps": value}
            )
        probes.append(
            {"model": "m", "dataset": dataset, "hidden_state": 2, "ols_training_mse": 1 - accuracy[index]}
            | {"logistic_train_accuracy": accuracy[index], "logistic_test_accuracy": accuracy[index] - 0.1}
            | {"logme": rng.normal(), "h_score": rng.uniform()}
        )
    return pd.DataFrame(rows), pd.DataFrame(probes)


SETTINGS = {
    "k_search": "paper_grid",
    "exclude_final_hidden_state": True,
    "probe_hidden_state": -1,
    "bootstrap_resamples": 200,
    "permutations": 720,
    "confidence": 0.95,
    "seed": 0,
}


def test_correlation_summary_finds_a_planted_configuration_and_reports_every_score():
    ntps_table, probe_metrics = synthetic_tables(6, seed=13)
    summary = correlation_summary(ntps_table, probe_metrics, SETTINGS)
    assert set(summary["score"]) == {"ntps_paper", "ntps_signal", "logme", "h_score"}
    assert len(summary) == 3 * (2 * 2 + 2)
    best = summary[(summary["selection"] == "best_in_sample") & (summary["target"] == "ols_training_mse")]
    assert (best["layer"] == 1).all() and (best["k"] == 2).all() and np.allclose(best["spearman_r"], -1)
    honest = summary[summary["selection"] == "leave_one_dataset_out"]
    np.testing.assert_allclose(honest["spearman_r"], honest["expected_sign"])
    assert summary["permutation"].eq("exact 720").all()
    assert (honest["p_value"] < 0.05).all() and (best["p_value"] < 0.05).all()
    report = markdown_report(summary, probe_metrics)
    assert "| ols_training_mse | ntps_paper | best_in_sample | -1.000 |" in report
    # The final layer (2) is excluded from the search, as the paper scans through the penultimate one.
    assert not (summary["layer"] == 2).any()


def test_too_few_datasets_give_an_empty_summary_and_a_report_that_says_so():
    ntps_table, probe_metrics = synthetic_tables(2, seed=14)
    summary = correlation_summary(ntps_table, probe_metrics, SETTINGS)
    assert summary.empty
    assert "3 or more datasets" in markdown_report(summary, probe_metrics)

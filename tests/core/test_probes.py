"""ntps.core.probes: the probes and transferability baselines against references and properties."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.linear_model import Ridge

from ntps.core.errors import NtpsInputError
from ntps.core.probes import (
    fit_least_squares_probe,
    fit_logistic_probe,
    h_score,
    log_maximum_evidence,
    one_hot,
)


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

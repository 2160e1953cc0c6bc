"""ntps.core.probes: the probes and transferability baselines against references and properties."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.linear_model import Ridge

from ntps.core.errors import NtpsInputError
from ntps.core.probes import (
    cross_validated_logistic_accuracy,
    fit_least_squares_probe,
    fit_logistic_probe,
    h_score,
    knn_accuracy,
    log_maximum_evidence,
    majority_rate,
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
    # A class the texts do not hold (id 1 of 0..2 here) is not scored, rather than making it NaN.
    with_gap = np.where(labels == 1, 2, labels)
    gap_result = log_maximum_evidence(features, with_gap)
    assert np.isfinite(gap_result.score) and len(gap_result.alphas) == 2
    assert gap_result.score == pytest.approx(log_maximum_evidence(features, np.where(with_gap == 2, 1, 0)).score, rel=1e-12)


@pytest.mark.parametrize(("n", "d", "scale"), [(40, 80, 1.0), (60, 60, 1.0), (60, 200, 300.0), (60, 576, 1000.0)])
def test_logme_with_as_many_dimensions_as_texts_or_more_is_the_finite_maximized_evidence(n, d, scale):
    """With d >= n the labels are fitted exactly as alpha -> 0 and beta runs off towards infinity; the
    evidence stays finite, warning-free, and equal to the literal Gaussian one at the alpha and beta
    returned (features of large norm, as a language model's, included)."""
    features, labels = linear_classification(n, d, 2, seed=6, noise=0.5)
    features = scale * features + scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = log_maximum_evidence(features, labels)
    assert np.isfinite(result.score)
    targets = one_hot(labels, 2)
    evidences = [
        multivariate_normal(np.zeros(n), np.eye(n) / beta + features @ features.T / alpha).logpdf(targets[:, column])
        for column, (alpha, beta) in enumerate(zip(result.alphas, result.betas))
    ]
    assert result.score == pytest.approx(np.mean(evidences) / n, rel=1e-6)


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


def test_majority_rate_is_the_accuracy_of_always_guessing_the_most_frequent_label():
    assert majority_rate(np.array([0, 1, 1, 2, 1])) == pytest.approx(0.6)
    assert majority_rate(np.array([3, 3])) == 1.0


def held_out_only_signal(seed: int):
    """Training features unrelated to the labels, held-out features that give them away."""
    rng = np.random.default_rng(seed)
    train_labels, test_labels = np.tile([0, 1], 60), np.tile([0, 1], 40)
    train_features = rng.normal(size=(120, 5))
    test_features = rng.normal(size=(80, 5)) * 0.1 + 3 * test_labels[:, None]
    return train_features, train_labels, test_features, test_labels


def test_knn_and_cross_validated_probe_choose_and_score_without_held_out_texts():
    train_features, train_labels, test_features, test_labels = held_out_only_signal(seed=20)
    knn = knn_accuracy(train_features, train_labels, test_features, test_labels, neighbors=[1, 5, 15], folds=5)
    cross_validated = cross_validated_logistic_accuracy(train_features, train_labels, folds=5)
    # Training texts carry no signal, so cross-validation on them is near chance...
    assert 0.3 < knn.cv_accuracy < 0.7 and 0.3 < cross_validated.accuracy < 0.7 and cross_validated.converged
    # ...whatever the held-out texts say: other held-out texts change only the held-out accuracy.
    shuffled = np.random.default_rng(21).permutation(len(test_labels))
    again = knn_accuracy(train_features, train_labels, test_features[shuffled], test_labels, neighbors=[1, 5, 15], folds=5)
    assert (again.n_neighbors, again.cv_accuracy) == (knn.n_neighbors, knn.cv_accuracy)
    assert knn.test_accuracy != again.test_accuracy
    # k-NN on the chosen k equals scikit-learn's classifier on features standardized on the training texts.
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_features)
    reference = KNeighborsClassifier(knn.n_neighbors).fit(scaler.transform(train_features), train_labels)
    assert knn.test_accuracy == pytest.approx(reference.score(scaler.transform(test_features), test_labels))


def test_knn_keeps_only_neighbour_counts_a_fold_can_hold_and_rare_labels_fall_back_to_plain_folds():
    features, labels = linear_classification(12, 3, 2, seed=22)
    labels[0] = 2  # a label seen once: no stratified fold can hold it twice
    result = knn_accuracy(features, labels, features[:0], labels[:0], neighbors=[1, 3, 50], folds=4)
    assert result.n_neighbors in (1, 3) and np.isnan(result.test_accuracy)
    with pytest.raises(NtpsInputError, match="neighbour count"):
        knn_accuracy(features, labels, features[:0], labels[:0], neighbors=[50], folds=4)
    with pytest.raises(NtpsInputError, match="at least 2 folds"):
        cross_validated_logistic_accuracy(features, labels, folds=1)

"""The per-layer ridge probe: its leave-one-out outputs from one SVD against scikit-learn's and
against refitting without each text."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier, RidgeClassifierCV

from ntps.core.errors import NtpsInputError
from ntps.core.layer_probe import (
    CenteredFeatures,
    accuracy_interval,
    effective_rank,
    h_scores,
    leave_one_out_outputs,
    ridge_leave_one_out,
    ridge_targets,
    ridge_test_predictions,
    standardized,
)
from ntps.core.probes import h_score

ALPHAS = np.logspace(-2, 3, 8)


def labelled(n: int, d: int, classes: int, seed: int = 0, signal: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    features = rng.normal(size=(n, d))
    features[:, :classes] += signal * np.eye(classes)[labels]
    return standardized(features)[0], labels


@pytest.mark.parametrize(("n", "d", "classes"), [(60, 10, 2), (40, 80, 3), (100, 30, 5)])
def test_leave_one_out_outputs_equal_scikit_learns(n, d, classes):
    features, labels = labelled(n, d, classes)
    outputs = leave_one_out_outputs(CenteredFeatures.of(features), ridge_targets(labels, classes), ALPHAS)
    reference = RidgeClassifierCV(alphas=ALPHAS, scoring="accuracy", store_cv_results=True).fit(features, labels)
    # scikit-learn keeps one output column for two classes (the second class's); ours has both.
    ours = outputs[:, :, 1:] if classes == 2 else outputs
    np.testing.assert_allclose(np.moveaxis(ours, 0, 2), reference.cv_results_, rtol=0, atol=1e-8)


@pytest.mark.parametrize(("n", "d", "classes"), [(40, 80, 3), (100, 30, 5)])
def test_best_strength_and_accuracy_equal_scikit_learns(n, d, classes):
    features, labels = labelled(n, d, classes)
    ours = ridge_leave_one_out(CenteredFeatures.of(features), labels, ALPHAS)
    reference = RidgeClassifierCV(alphas=ALPHAS, scoring="accuracy").fit(features, labels)
    assert ours.best_alpha == reference.alpha_
    assert ours.accuracy == pytest.approx(reference.best_score_, abs=1e-12)


def test_leave_one_out_predictions_equal_refitting_without_each_text():
    features, labels = labelled(30, 12, 3, seed=1)
    alpha = 2.0
    result = ridge_leave_one_out(CenteredFeatures.of(features), labels, np.array([alpha]))
    for left_out in range(len(labels)):
        keep = np.arange(len(labels)) != left_out
        refit = RidgeClassifier(alpha=alpha).fit(features[keep], labels[keep])
        assert result.predictions[left_out] == refit.predict(features[left_out : left_out + 1])[0]


def test_labels_need_not_be_contiguous_and_accuracy_tracks_the_signal():
    features, labels = labelled(200, 20, 3, seed=2, signal=3.0)
    strong = ridge_leave_one_out(CenteredFeatures.of(features), labels * 5 + 7, ALPHAS)
    assert set(strong.predictions) <= {7, 12, 17}
    assert strong.accuracy > 0.9
    noise, _ = labelled(200, 20, 3, seed=3, signal=0.0)
    assert ridge_leave_one_out(CenteredFeatures.of(noise), labels, ALPHAS).accuracy < 0.5
    assert len(strong.alphas) == len(strong.accuracies) and strong.best == int(np.argmax(strong.accuracies))


def test_bad_inputs_are_refused():
    features, labels = labelled(20, 4, 2)
    with pytest.raises(NtpsInputError, match="at least 2 classes"):
        ridge_leave_one_out(CenteredFeatures.of(features), np.zeros(20, dtype=int), ALPHAS)
    with pytest.raises(NtpsInputError, match="the 5 texts' labels"):
        ridge_leave_one_out(CenteredFeatures.of(features[:5]), labels, ALPHAS)
    features[0, 0] = np.nan
    with pytest.raises(NtpsInputError, match="NaN"):
        CenteredFeatures.of(features)
    with pytest.raises(NtpsInputError, match="n_texts >= 3"):
        CenteredFeatures.of(features[:2])


def test_the_accuracy_interval_is_wilsons_and_covers_its_share():
    low, high = accuracy_interval(80, 100)
    assert (low, high) == pytest.approx((0.7112, 0.8666), abs=1e-4)
    assert accuracy_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert accuracy_interval(10, 10)[1] == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(0)
    covered = [low <= 0.7 <= high for low, high in (accuracy_interval(rng.binomial(300, 0.7), 300) for _ in range(400))]
    assert 0.92 <= np.mean(covered) <= 0.98


def test_standardized_uses_the_training_texts_statistics():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    test = np.array([[2.0, 6.0]])
    scaled_train, scaled_test = standardized(train, test)
    np.testing.assert_allclose(scaled_train, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(scaled_test, [[0.0, 1.0]])


@pytest.mark.parametrize(("n", "d", "classes"), [(60, 10, 2), (40, 80, 3)])
def test_held_out_predictions_equal_scikit_learns_ridge_classifier(n, d, classes):
    features, labels = labelled(n + 25, d, classes, seed=4)
    train, test = features[:n], features[n:]
    for alpha in (0.1, 10.0):
        reference = RidgeClassifier(alpha=alpha).fit(train, labels[:n]).predict(test)
        ours = ridge_test_predictions(CenteredFeatures.of(train), labels[:n], test, alpha)
        np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize(("n", "d"), [(80, 12), (30, 50)])
def test_the_decomposition_is_the_thin_svds(n, d):
    features = np.random.default_rng(5).normal(size=(n, d))
    decomposition = CenteredFeatures.of(features)
    singular = np.linalg.svd(features - features.mean(axis=0), compute_uv=False)
    kept = singular[singular**2 > singular[0] ** 2 * 1e-12]
    np.testing.assert_allclose(np.sort(decomposition.squared)[::-1], kept**2, rtol=1e-10)
    np.testing.assert_allclose(decomposition.u.T @ decomposition.u, np.eye(len(kept)), atol=1e-9)
    assert decomposition.strength_scale() == pytest.approx((singular**2).sum() / min(n, d))


def test_effective_rank_counts_the_directions_the_features_spread_over():
    rng = np.random.default_rng(6)
    isotropic = rng.normal(size=(4000, 5))
    assert effective_rank(CenteredFeatures.of(isotropic)) == pytest.approx(5, rel=0.01)
    one_direction = np.outer(rng.normal(size=400), rng.normal(size=5)) + 1e-9 * rng.normal(size=(400, 5))
    assert effective_rank(CenteredFeatures.of(one_direction)) < 1.01


@pytest.mark.parametrize(("n", "d", "classes"), [(200, 20, 4), (60, 90, 3)])
def test_h_scores_equal_their_definitions(n, d, classes):
    features, labels = labelled(n, d, classes, seed=7)
    plain, shrunk = h_scores(CenteredFeatures.of(features), labels)
    if n > d:  # full rank: the pseudo-inverse of the reference is the inverse
        assert plain == pytest.approx(h_score(features, labels), rel=1e-8)
    from sklearn.covariance import LedoitWolf

    centered = features - features.mean(axis=0)
    shrinkage = LedoitWolf(assume_centered=True).fit(centered).shrinkage_
    covariance = centered.T @ centered / n
    regularized = (1 - shrinkage) * covariance + shrinkage * np.trace(covariance) / d * np.eye(d)
    means = np.zeros_like(centered)
    for label in np.unique(labels):
        means[labels == label] = centered[labels == label].mean(axis=0)
    between = means.T @ means / n
    assert shrunk == pytest.approx((1 - shrinkage) * np.trace(np.linalg.solve(regularized, between)), rel=1e-8)
    assert 0 < shrunk <= plain + 1e-9

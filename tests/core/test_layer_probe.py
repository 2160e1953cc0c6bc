"""The per-layer ridge probe: its leave-one-out outputs from one SVD against scikit-learn's and
against refitting without each text."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier, RidgeClassifierCV

from ntps.core.errors import NtpsInputError
from ntps.core.layer_probe import (
    accuracy_interval,
    leave_one_out_outputs,
    ridge_leave_one_out,
    ridge_targets,
    ridge_test_predictions,
    standardized,
)

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
    outputs = leave_one_out_outputs(features, ridge_targets(labels, classes), ALPHAS)
    reference = RidgeClassifierCV(alphas=ALPHAS, scoring="accuracy", store_cv_results=True).fit(features, labels)
    # scikit-learn keeps one output column for two classes (the second class's); ours has both.
    ours = outputs[:, :, 1:] if classes == 2 else outputs
    np.testing.assert_allclose(np.moveaxis(ours, 0, 2), reference.cv_results_, rtol=0, atol=1e-8)


@pytest.mark.parametrize(("n", "d", "classes"), [(40, 80, 3), (100, 30, 5)])
def test_best_strength_and_accuracy_equal_scikit_learns(n, d, classes):
    features, labels = labelled(n, d, classes)
    ours = ridge_leave_one_out(features, labels, ALPHAS)
    reference = RidgeClassifierCV(alphas=ALPHAS, scoring="accuracy").fit(features, labels)
    assert ours.best_alpha == reference.alpha_
    assert ours.accuracy == pytest.approx(reference.best_score_, abs=1e-12)


def test_leave_one_out_predictions_equal_refitting_without_each_text():
    features, labels = labelled(30, 12, 3, seed=1)
    alpha = 2.0
    result = ridge_leave_one_out(features, labels, np.array([alpha]))
    for left_out in range(len(labels)):
        keep = np.arange(len(labels)) != left_out
        refit = RidgeClassifier(alpha=alpha).fit(features[keep], labels[keep])
        assert result.predictions[left_out] == refit.predict(features[left_out : left_out + 1])[0]


def test_labels_need_not_be_contiguous_and_accuracy_tracks_the_signal():
    features, labels = labelled(200, 20, 3, seed=2, signal=3.0)
    strong = ridge_leave_one_out(features, labels * 5 + 7, ALPHAS)
    assert set(strong.predictions) <= {7, 12, 17}
    assert strong.accuracy > 0.9
    noise, _ = labelled(200, 20, 3, seed=3, signal=0.0)
    assert ridge_leave_one_out(noise, labels, ALPHAS).accuracy < 0.5
    assert len(strong.alphas) == len(strong.accuracies) and strong.best == int(np.argmax(strong.accuracies))


def test_bad_inputs_are_refused():
    features, labels = labelled(20, 4, 2)
    with pytest.raises(NtpsInputError, match="at least 2 classes"):
        ridge_leave_one_out(features, np.zeros(20, dtype=int), ALPHAS)
    features[0, 0] = np.nan
    with pytest.raises(NtpsInputError, match="NaN"):
        ridge_leave_one_out(features, labels, ALPHAS)
    with pytest.raises(NtpsInputError, match="n_texts"):
        ridge_leave_one_out(features[:5], labels, ALPHAS)


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
        np.testing.assert_array_equal(ridge_test_predictions(train, labels[:n], test, alpha), reference)

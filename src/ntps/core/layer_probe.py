"""A probe cheap enough for every layer: a ridge classifier whose leave-one-out accuracy, for a whole
path of regularization strengths, comes from one decomposition of the layer's features.

The classifier is scikit-learn's RidgeClassifier: least squares with an unpenalized intercept onto
targets coded +1 for a text's class and -1 for the others, predicting the class of the largest output.
For features X (n, d), centered, with thin SVD X_c = U S V^T, the fitted outputs at strength alpha are
H Y with the hat matrix H = 1 1^T / n + U diag(s^2 / (s^2 + alpha)) U^T (the intercept unpenalized), and
the leave-one-out output of text i is exactly y_i - (y_i - (H Y)_i) / (1 - H_ii): leaving a text out
of a linear smoother's fit needs no refit. So every alpha costs two products with U, after one
symmetric eigendecomposition of the smaller Gram matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats

from ntps.core.errors import NtpsInputError


def standardized(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Each array centered and scaled by the training texts' mean and standard deviation (features
    constant on the training texts are centered only), as scikit-learn's StandardScaler does."""
    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    scale[scale == 0] = 1.0
    return [(array - mean) / scale for array in (train, *others)]


@dataclass(frozen=True)
class RidgeLeaveOneOut:
    """The leave-one-out accuracies of a ridge classifier over a path of strengths.

    Attributes:
        alphas: (a,) the strengths, in the order searched.
        accuracies: (a,) the share of training texts whose left-out prediction is their label.
        best: index into alphas of the first highest accuracy.
        predictions: (n,) each text's left-out predicted label id at the best strength.
    """

    alphas: np.ndarray
    accuracies: np.ndarray
    best: int
    predictions: np.ndarray

    @property
    def best_alpha(self) -> float:
        return float(self.alphas[self.best])

    @property
    def accuracy(self) -> float:
        return float(self.accuracies[self.best])


def strength_scale(features: np.ndarray) -> float:
    """The features' mean squared singular value once centered, trace(X_c^T X_c) / min(n, d): a unit
    for the strengths, so that one grid of relative strengths serves features of any width."""
    centered = features - features.mean(axis=0)
    return max(float(np.einsum("ij,ij->", centered, centered)) / min(centered.shape), np.finfo(float).tiny)


def ridge_targets(label_ids: np.ndarray, n_classes: int) -> np.ndarray:
    """(n,) label ids -> (n, c) targets, +1 for the text's class and -1 elsewhere."""
    targets = -np.ones((len(label_ids), n_classes))
    targets[np.arange(len(label_ids)), label_ids] = 1.0
    return targets


def ridge_leave_one_out(features: np.ndarray, label_ids: np.ndarray, alphas: np.ndarray) -> RidgeLeaveOneOut:
    """The ridge classifier's exact leave-one-out accuracy at every strength, from one decomposition.

    Args:
        features: (n, d) the training texts' features (standardize them first: the penalty is not
            scale-invariant).
        label_ids: (n,) integer labels in [0, c).
        alphas: (a,) strengths (strength_scale gives their unit).
    """
    features = np.asarray(features, dtype=np.float64)
    label_ids = np.asarray(label_ids)
    n = len(label_ids)
    if features.ndim != 2 or features.shape[0] != n or n < 3:
        raise NtpsInputError(f"features must be (n_texts, d) with n_texts = {n} >= 3, got {features.shape}")
    if not np.isfinite(features).all():
        raise NtpsInputError("features contain NaN or infinite values")
    classes = np.unique(label_ids)
    if len(classes) < 2:
        raise NtpsInputError(f"a classifier needs at least 2 classes, got {classes.tolist()}")
    # Labels renumbered to the classes present, as scikit-learn's classes_.
    codes = np.searchsorted(classes, label_ids)
    alphas = np.asarray(alphas, dtype=np.float64)
    outputs = leave_one_out_outputs(features, ridge_targets(codes, len(classes)), alphas)
    predictions = outputs.argmax(axis=2)
    accuracies = (predictions == codes).mean(axis=1)
    best = int(np.argmax(accuracies))
    return RidgeLeaveOneOut(alphas, accuracies, best, classes[predictions[best]])


def leave_one_out_outputs(features: np.ndarray, targets: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Each text's output from ridge fitted without it, at every strength: (a, n, c), for features
    (n, d), targets (n, c) and strengths (a,); see the module's docstring for the formula."""
    n = len(targets)
    centered = features - features.mean(axis=0)
    u, squared = left_singular_vectors(centered)
    alphas = np.asarray(alphas, dtype=np.float64)
    target_mean = targets.mean(axis=0)
    projected = u.T @ (targets - target_mean)
    squared_u = u**2
    outputs = np.empty((len(alphas), n, targets.shape[1]))
    for index, alpha in enumerate(alphas):
        shrink = squared / (squared + alpha)
        fitted = target_mean + u @ (shrink[:, None] * projected)
        leverage = 1.0 / n + squared_u @ shrink
        outputs[index] = targets - (targets - fitted) / (1.0 - leverage)[:, None]
    return outputs


def left_singular_vectors(centered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """U (n, r) and the squared singular values (r,) of X (n, d), from the eigendecomposition of the
    smaller of X X^T and X^T X (half the cost of an SVD), keeping the r directions whose squared
    singular value is above 1e-12 of the largest: the others' shrinkage s^2 / (s^2 + alpha) is nil."""
    n, d = centered.shape
    if n <= d:
        squared, u = np.linalg.eigh(centered @ centered.T)
    else:
        squared, v = np.linalg.eigh(centered.T @ centered)
        u = None
    keep = squared > squared.max(initial=0.0) * 1e-12
    squared = squared[keep]
    if u is None:
        u = (centered @ v[:, keep]) / np.sqrt(squared)
    else:
        u = u[:, keep]
    return u, squared


def ridge_test_predictions(train: np.ndarray, label_ids: np.ndarray, test: np.ndarray, alpha: float) -> np.ndarray:
    """The ridge classifier fitted on all training texts at strength alpha, applied to test (m, d):
    (m,) predicted label ids. Its weights X_c^T U diag(1 / (s^2 + alpha)) U^T Y_c come from the same
    decomposition as the leave-one-out outputs."""
    classes = np.unique(label_ids)
    targets = ridge_targets(np.searchsorted(classes, label_ids), len(classes))
    mean = train.mean(axis=0)
    centered = train - mean
    u, squared = left_singular_vectors(centered)
    target_mean = targets.mean(axis=0)
    weights = centered.T @ (u @ ((u.T @ (targets - target_mean)) / (squared + alpha)[:, None]))
    return classes[((test - mean) @ weights + target_mean).argmax(axis=1)]


def accuracy_interval(correct: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of an accuracy of correct / total: the binomial uncertainty of a
    share measured on that many texts (it ignores the choice of the strength, which leave-one-out
    makes on the same texts)."""
    if total <= 0:
        raise NtpsInputError("an accuracy needs at least one text")
    z = scipy.stats.norm.ppf(0.5 + level / 2)
    share = correct / total
    denominator = 1 + z**2 / total
    center = (share + z**2 / (2 * total)) / denominator
    half = z * np.sqrt(share * (1 - share) / total + z**2 / (4 * total**2)) / denominator
    return float(center - half), float(center + half)

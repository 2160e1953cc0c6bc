"""Scores cheap enough for every layer, all from one decomposition of the layer's training features.

A ridge classifier (scikit-learn's RidgeClassifier: least squares with an unpenalized intercept onto
targets coded +1 for a text's class and -1 for the others, predicting the class of the largest output)
whose exact leave-one-out accuracy comes for a whole path of strengths at once. For features X (n, d),
centered, with thin SVD X_c = U S V^T, the fitted outputs at strength alpha are H Y with the hat matrix
H = 1 1^T / n + U diag(s^2 / (s^2 + alpha)) U^T (the intercept unpenalized), and the leave-one-out
output of text i is exactly y_i - (y_i - (H Y)_i) / (1 - H_ii): leaving a text out of a linear
smoother's fit needs no refit. So every strength costs two products with U.

The same U and s give the label-free effective rank (RankMe, Garrido et al. 2023) and the H-score
(Bao et al. 2019) with its Ledoit-Wolf-shrunk variant (Ibrahim et al. 2021, the default of
flairNLP/transformer-ranker): the class means are averages of rows of X_c, so the between-class
covariance lives in span(V), where the feature covariance is diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats
from sklearn.covariance import ledoit_wolf_shrinkage

from ntps.core.errors import NtpsInputError
from ntps.core.linalg import left_singular_vectors


def standardized(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Each array centered and scaled by the training texts' mean and standard deviation (features
    constant on the training texts are centered only), as scikit-learn's StandardScaler does."""
    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    scale[scale == 0] = 1.0
    return [(array - mean) / scale for array in (train, *others)]


@dataclass(frozen=True)
class CenteredFeatures:
    """A layer's training features X (n, d), centered, with the thin SVD's left factor and values.

    Attributes:
        mean: (d,) the training features' mean.
        centered: (n, d) X_c = X - mean.
        u: (n, r) left singular vectors of X_c with nonzero singular value.
        squared: (r,) their squared singular values s^2.
    """

    mean: np.ndarray
    centered: np.ndarray
    u: np.ndarray
    squared: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> CenteredFeatures:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[0] < 3:
            raise NtpsInputError(f"features must be (n_texts, d) with n_texts >= 3, got {features.shape}")
        if not np.isfinite(features).all():
            raise NtpsInputError("features contain NaN or infinite values")
        mean = features.mean(axis=0)
        centered = features - mean
        squared, u = left_singular_vectors(centered)
        return cls(mean, centered, u, squared)

    @property
    def n(self) -> int:
        return self.centered.shape[0]

    def strength_scale(self) -> float:
        """The mean squared singular value, trace(X_c^T X_c) / min(n, d): a unit for the ridge
        strengths, so that one grid of relative strengths serves features of any width."""
        return max(float(self.squared.sum()) / min(self.centered.shape), np.finfo(float).tiny)


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


def ridge_targets(label_ids: np.ndarray, n_classes: int) -> np.ndarray:
    """(n,) label ids -> (n, c) targets, +1 for the text's class and -1 elsewhere."""
    targets = -np.ones((len(label_ids), n_classes))
    targets[np.arange(len(label_ids)), label_ids] = 1.0
    return targets


def _classes(label_ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The classes present (sorted, as scikit-learn's classes_) and each text's index among them."""
    label_ids = np.asarray(label_ids)
    if label_ids.shape != (n,):
        raise NtpsInputError(f"label ids must be a vector of the {n} texts' labels, got shape {label_ids.shape}")
    classes = np.unique(label_ids)
    if len(classes) < 2:
        raise NtpsInputError(f"a classifier needs at least 2 classes, got {classes.tolist()}")
    return classes, np.searchsorted(classes, label_ids)


def leave_one_out_outputs(features: CenteredFeatures, targets: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Each text's output from ridge fitted without it, at every strength: (a, n, c), for targets
    (n, c) and strengths (a,); see the module's docstring for the formula."""
    u, squared = features.u, features.squared
    target_mean = targets.mean(axis=0)
    projected = u.T @ (targets - target_mean)
    squared_u = u**2
    outputs = np.empty((len(alphas), features.n, targets.shape[1]))
    for index, alpha in enumerate(alphas):
        shrink = squared / (squared + alpha)
        fitted = target_mean + u @ (shrink[:, None] * projected)
        leverage = 1.0 / features.n + squared_u @ shrink
        outputs[index] = targets - (targets - fitted) / (1.0 - leverage)[:, None]
    return outputs


def ridge_leave_one_out(features: CenteredFeatures, label_ids: np.ndarray, alphas: np.ndarray) -> RidgeLeaveOneOut:
    """The ridge classifier's exact leave-one-out accuracy at every strength (a,); standardize the
    features first, since the penalty is not scale-invariant."""
    classes, codes = _classes(label_ids, features.n)
    alphas = np.asarray(alphas, dtype=np.float64)
    outputs = leave_one_out_outputs(features, ridge_targets(codes, len(classes)), alphas)
    predictions = outputs.argmax(axis=2)
    accuracies = (predictions == codes).mean(axis=1)
    best = int(np.argmax(accuracies))
    return RidgeLeaveOneOut(alphas, accuracies, best, classes[predictions[best]])


def ridge_test_predictions(features: CenteredFeatures, label_ids: np.ndarray, test: np.ndarray, alpha: float) -> np.ndarray:
    """The ridge classifier fitted on all training texts at strength alpha, applied to test (m, d):
    (m,) predicted label ids. Its weights X_c^T U diag(1 / (s^2 + alpha)) U^T Y_c need no other
    decomposition."""
    classes, codes = _classes(label_ids, features.n)
    targets = ridge_targets(codes, len(classes))
    target_mean = targets.mean(axis=0)
    coefficients = features.u @ ((features.u.T @ (targets - target_mean)) / (features.squared + alpha)[:, None])
    weights = features.centered.T @ coefficients
    return classes[((np.asarray(test, dtype=np.float64) - features.mean) @ weights + target_mean).argmax(axis=1)]


def effective_rank(features: CenteredFeatures) -> float:
    """RankMe: exp of the entropy of the singular values normalized to sum 1, between 1 and min(n, d);
    label-free, it says how many directions the features spread over."""
    singular = np.sqrt(features.squared)
    shares = singular / singular.sum()
    return float(np.exp(-(shares * np.log(shares)).sum()))


def h_scores(features: CenteredFeatures, label_ids: np.ndarray) -> tuple[float, float]:
    """(H-score, shrunk H-score) of the features for these labels.

    H-score is tr(cov(f)^+ cov(E[f | y])), cov(E[f | y]) = sum_c n_c m_c m_c^T / n over the class
    means m_c. The shrunk one is (1 - a) tr(cov_a(f)^-1 cov(E[f | y])) with cov_a = (1 - a) cov + a mu I,
    mu = tr(cov) / d and a the Ledoit-Wolf shrinkage (scikit-learn's ledoit_wolf_shrinkage), which
    keeps the inverse stable when d is close to n. In V's basis both covariances are diagonal on the
    part that counts: with P the projection onto the class indicators, the trace is
    sum_j s_j^2 [U^T P U]_jj / n over cov's eigenvalue at j.
    """
    _, codes = _classes(label_ids, features.n)
    counts = np.bincount(codes)
    indicator_u = np.zeros((len(counts), features.u.shape[1]))
    np.add.at(indicator_u, codes, features.u)
    between = (indicator_u**2 / counts[:, None]).sum(axis=0)  # [U^T P U]_jj
    n, d = features.centered.shape
    covariance = features.squared / n
    plain = float(between.sum())
    shrinkage = float(ledoit_wolf_shrinkage(features.centered, assume_centered=True))
    mu = features.squared.sum() / (n * d)
    shrunk = float((1 - shrinkage) * (covariance * between / ((1 - shrinkage) * covariance + shrinkage * mu)).sum())
    return plain, shrunk


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

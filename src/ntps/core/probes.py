"""Linear probes and transferability scores on fixed (mean-pooled) features.

The probes are the paper's Section 4.1 performance measures: a closed-form least-squares probe
(its training MSE) and a logistic-regression probe (its accuracy). LogME (You et al., ICML 2021)
and H-score (Bao et al., ICIP 2019) are peer transferability metrics computed on the same
features, so that NTPS can be compared with them at ranking datasets. The reference scores a
transferability score must beat (arXiv 2405.20420, 2503.18528) are here too: the majority-class
rate, k-NN accuracy with k chosen by cross-validation, and the logistic probe's cross-validated
accuracy, each on the training texts only unless it says "test".
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ntps.core.errors import NtpsInputError
from ntps.core.linalg import left_singular_vectors


def one_hot(label_ids: np.ndarray, n_classes: int) -> np.ndarray:
    """(n,) integer labels in [0, n_classes) -> (n, n_classes) float64 indicator matrix."""
    label_ids = np.asarray(label_ids)
    if label_ids.ndim != 1 or (label_ids.size and (label_ids.min() < 0 or label_ids.max() >= n_classes)):
        raise NtpsInputError(f"label ids must be a vector with values in [0, {n_classes})")
    return np.eye(n_classes, dtype=np.float64)[label_ids]


def _check_features(features: np.ndarray, n_labels: int) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != n_labels:
        raise NtpsInputError(f"features must be (n_texts, d) with n_texts={n_labels}, got shape {features.shape}")
    if features.shape[0] < 2:
        raise NtpsInputError("a probe needs at least 2 texts")
    if not np.isfinite(features).all():
        raise NtpsInputError("features contain NaN or infinite values")
    return features


@dataclass(frozen=True)
class LeastSquaresProbe:
    """y ~ x @ weights + bias, fitted in closed form.

    Attributes:
        weights: (d, c).
        bias: (c,).
        training_mse: mean over texts of the squared error summed over the c one-hot outputs,
            i.e. ||Y - X W - 1 b^T||_F^2 / n (the paper's MSE loss, eq. 2).
    """

    weights: np.ndarray
    bias: np.ndarray
    training_mse: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n, d) -> (n, c) fitted outputs."""
        return np.asarray(features, dtype=np.float64) @ self.weights + self.bias


def fit_least_squares_probe(features: np.ndarray, targets: np.ndarray, ridge: float = 0.0) -> LeastSquaresProbe:
    """Closed-form (ridge) least squares with an unpenalized intercept.

    Args:
        features: (n, d).
        targets: (n, c), typically one-hot labels.
        ridge: penalty ridge * ||W||_F^2 on the weights; 0 is ordinary least squares (the
            minimum-norm solution when the features are rank deficient, as numpy's lstsq).
    """
    targets = np.asarray(targets, dtype=np.float64)
    features = _check_features(features, targets.shape[0])
    if ridge < 0:
        raise NtpsInputError(f"ridge must be non-negative, got {ridge}")
    feature_mean, target_mean = features.mean(axis=0), targets.mean(axis=0)
    centered, centered_targets = features - feature_mean, targets - target_mean
    if ridge == 0:
        weights = np.linalg.lstsq(centered, centered_targets, rcond=None)[0]
    else:
        gram = centered.T @ centered + ridge * np.eye(features.shape[1])
        weights = np.linalg.solve(gram, centered.T @ centered_targets)
    bias = target_mean - feature_mean @ weights
    residuals = targets - features @ weights - bias
    return LeastSquaresProbe(weights, bias, float((residuals**2).sum() / targets.shape[0]))


def _logistic_probe(inverse_regularization: float, max_iterations: int, tolerance: float, seed: int, solver: str = "saga"):
    # saga converges slowly on unscaled features; the scaler is part of the probe, fitted on train only.
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(
            solver=solver, C=inverse_regularization, max_iter=max_iterations, tol=tolerance, random_state=seed
        ),
    )


@contextlib.contextmanager
def _few_texts_per_class_allowed():
    """scikit-learn warns that a fold with more classes than half its texts may be a regression
    target; here the labels are class ids by construction, and the probe table already shows
    n_classes and n_train, so the warning tells the user nothing new."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%", category=UserWarning)
        yield


def _converged(caught: list[warnings.WarningMessage]) -> bool:
    # Reported by the caller, once per table, with what to change; the warning itself would name neither.
    return not any(issubclass(item.category, ConvergenceWarning) for item in caught)


@dataclass(frozen=True)
class LogisticProbeResult:
    train_accuracy: float
    test_accuracy: float
    n_iterations: int
    converged: bool


def fit_logistic_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    inverse_regularization: float = 1.0,
    max_iterations: int = 1000,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> LogisticProbeResult:
    """Multinomial logistic regression (scikit-learn, solver "saga", as the paper) on
    standardized features; accuracy on the training texts (the paper's number) and held out.

    Args:
        train_features: (n, d); test_features: (m, d), m may be 0.
        train_labels: (n,) and test_labels: (m,) integer label ids.
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    train_features = _check_features(train_features, len(train_labels))
    if len(np.unique(train_labels)) < 2:
        raise NtpsInputError("the training texts hold a single label: a classifier cannot be fitted")
    probe = _logistic_probe(inverse_regularization, max_iterations, tolerance, seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe.fit(train_features, train_labels)
    converged = _converged(caught)
    test_accuracy = float("nan")
    if len(test_labels):
        test_accuracy = float(probe.score(np.asarray(test_features, dtype=np.float64), test_labels))
    return LogisticProbeResult(
        train_accuracy=float(probe.score(train_features, train_labels)),
        test_accuracy=test_accuracy,
        n_iterations=int(np.max(probe[-1].n_iter_)),
        converged=converged,
    )


@dataclass(frozen=True)
class LogMEResult:
    """score: mean over classes of the maximum log evidence per text; alphas, betas: (c,) the
    prior and noise precisions that maximize each class's evidence."""

    score: float
    alphas: np.ndarray
    betas: np.ndarray


def log_maximum_evidence(
    features: np.ndarray, label_ids: np.ndarray, max_iterations: int = 100, tolerance: float = 1e-6
) -> LogMEResult:
    """LogME: for each class's one-hot column y, the Bayesian linear model y = F w + noise with
    w ~ N(0, I/alpha), noise ~ N(0, I/beta); alpha and beta maximize the evidence p(y | F) by
    MacKay's fixed point (as thuml/LogME).

    One eigendecomposition of the smaller of F F^T and F^T F serves every class, and the fixed point
    runs in its basis: with F = U diag(s) V^T (s > 0, rank r) and x = U^T y, the posterior mean's
    norm is sum_j beta^2 s_j^2 x_j^2 / (alpha + beta s_j^2)^2 and the residual
    ||y||^2 - ||x||^2 + sum_j x_j^2 (alpha / (alpha + beta s_j^2))^2, so an iteration costs O(r).
    When r = n (as many dimensions as texts, or more) y is fitted exactly as alpha -> 0 and the
    evidence is maximized with beta -> infinity; beta stops where the residual reaches the float
    rounding of ||y||^2, which leaves the evidence finite.

    Only the classes the texts hold are scored: a class with no text here (a rare one of R52
    left out of a sample) has an all-zero column, which any weight fits exactly, so its evidence is
    unbounded (thuml/LogME returns NaN for it).

    Args:
        features: (n, d) raw features (LogME does not standardize).
        label_ids: (n,) integer labels.
    """
    label_ids = np.asarray(label_ids)
    features = _check_features(features, len(label_ids))
    n, d = features.shape
    targets = one_hot(label_ids, int(label_ids.max()) + 1)[:, np.unique(label_ids)]
    squared, u = left_singular_vectors(features)
    projected = u.T @ targets  # (r, c): x = U^T y per class
    zero_directions = d - len(squared)
    evidences, alphas, betas = [], [], []
    for column in range(targets.shape[1]):
        x2 = projected[:, column] ** 2
        target_norm = float(targets[:, column] @ targets[:, column])
        outside = max(target_norm - float(x2.sum()), 0.0)
        residual_floor = target_norm * np.finfo(float).eps * max(n, d)

        def fit(alpha: float, beta: float) -> tuple[float, float, float]:
            shrink = alpha / (alpha + beta * squared)
            gamma = float((1.0 - shrink).sum())
            weight_norm = float((x2 * (1.0 - shrink) ** 2 / squared).sum())
            residual = max(outside + float((x2 * shrink**2).sum()), residual_floor)
            return gamma, weight_norm, residual

        alpha, beta = 1.0, 1.0
        for _ in range(max_iterations):
            gamma, weight_norm, residual = fit(alpha, beta)
            new_alpha = gamma / max(weight_norm, np.finfo(float).tiny)
            new_beta = max(n - gamma, np.finfo(float).eps) / residual
            done = abs(new_alpha / new_beta - alpha / beta) <= tolerance * alpha / beta
            alpha, beta = new_alpha, new_beta
            if done:
                break
        _, weight_norm, residual = fit(alpha, beta)
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * (np.log(alpha + beta * squared).sum() + zero_directions * np.log(alpha))
            - beta / 2 * residual
            - alpha / 2 * weight_norm
            - n / 2 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
        alphas.append(alpha)
        betas.append(beta)
    return LogMEResult(float(np.mean(evidences)), np.asarray(alphas), np.asarray(betas))


def h_score(features: np.ndarray, label_ids: np.ndarray, rcond: float = 1e-10) -> float:
    """H-score: tr(cov(f)^+ cov(E[f | y])), the between-class share of the feature covariance.

    Args:
        features: (n, d).
        label_ids: (n,) integer labels.
        rcond: eigenvalues of cov(f) below rcond * the largest are treated as zero in the
            pseudo-inverse (the original uses a plain pseudo-inverse; with n close to d the
            smallest directions are noise and would dominate the trace).
    """
    label_ids = np.asarray(label_ids)
    features = _check_features(features, len(label_ids))
    centered = features - features.mean(axis=0)
    covariance = centered.T @ centered / len(centered)
    class_means = np.zeros_like(centered)
    for label in np.unique(label_ids):
        rows = label_ids == label
        class_means[rows] = centered[rows].mean(axis=0)
    between_class = class_means.T @ class_means / len(centered)
    return float(np.trace(np.linalg.pinv(covariance, rcond=rcond, hermitian=True) @ between_class))


def majority_rate(train_labels: np.ndarray) -> float:
    """The share of the most frequent label among the training texts: the accuracy of always
    guessing it, a task's trivial baseline."""
    counts = np.bincount(np.asarray(train_labels))
    return float(counts.max() / counts.sum())


def cross_validation_folds(train_labels: np.ndarray, folds: int, seed: int) -> StratifiedKFold | KFold:
    """Stratified shuffled folds over the training texts, as many as the rarest label allows (at
    least 2); plain shuffled folds when a label occurs once."""
    if folds < 2:
        raise NtpsInputError(f"cross-validation needs at least 2 folds, got {folds}")
    rarest = int(np.unique(train_labels, return_counts=True)[1].min())
    if rarest >= 2:
        return StratifiedKFold(n_splits=min(folds, rarest), shuffle=True, random_state=seed)
    return KFold(n_splits=min(folds, len(train_labels)), shuffle=True, random_state=seed)


@dataclass(frozen=True)
class KnnResult:
    test_accuracy: float
    n_neighbors: int
    cv_accuracy: float


def knn_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    neighbors: list[int],
    folds: int = 5,
    seed: int = 0,
) -> KnnResult:
    """k-NN accuracy on the held-out texts (arXiv 2503.18528's estimator), k chosen among neighbors
    by cross-validated accuracy on the training texts only; features standardized on the training
    texts, as the logistic probe's.

    Args:
        train_features: (n, d); test_features: (m, d), m may be 0 (test_accuracy NaN).
        train_labels: (n,) and test_labels: (m,) integer label ids.
        neighbors: candidate k; those larger than a training fold are dropped.
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    train_features = _check_features(train_features, len(train_labels))
    splitter = cross_validation_folds(train_labels, folds, seed)
    smallest_fold = len(train_labels) - -(-len(train_labels) // splitter.get_n_splits())
    candidates = sorted({int(k) for k in neighbors if 1 <= int(k) <= smallest_fold})
    if not candidates:
        raise NtpsInputError(f"no k-NN neighbour count in {neighbors} fits a training fold of {smallest_fold} texts")
    search = GridSearchCV(
        make_pipeline(StandardScaler(), KNeighborsClassifier()),
        {"kneighborsclassifier__n_neighbors": candidates},
        cv=splitter,
        scoring="accuracy",
    )
    with _few_texts_per_class_allowed():
        search.fit(train_features, train_labels)
    test_accuracy = float("nan")
    if len(test_labels):
        test_accuracy = float(search.score(np.asarray(test_features, dtype=np.float64), test_labels))
    return KnnResult(
        test_accuracy=test_accuracy,
        n_neighbors=int(search.best_params_["kneighborsclassifier__n_neighbors"]),
        cv_accuracy=float(search.best_score_),
    )


@dataclass(frozen=True)
class CrossValidatedAccuracy:
    accuracy: float
    converged: bool


def cross_validated_logistic_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    folds: int = 5,
    inverse_regularization: float = 1.0,
    max_iterations: int = 1000,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> CrossValidatedAccuracy:
    """The logistic probe's mean accuracy over cross-validation folds of the training texts: what a
    cheap probe already says about the task, without held-out labels.

    The probe is fit_logistic_probe's model (L2-regularized multinomial logistic regression on
    standardized features, the same C), its convex objective minimized by lbfgs rather than saga:
    the same minimizer, reached much faster on features of the default's size (saga's folds would
    cost more than the rest of the probes stage), with fold accuracies equal but for one text where
    saga had not quite converged."""
    train_labels = np.asarray(train_labels)
    train_features = _check_features(train_features, len(train_labels))
    with warnings.catch_warnings(record=True) as caught, _few_texts_per_class_allowed():
        warnings.simplefilter("always", ConvergenceWarning)
        accuracies = cross_val_score(
            _logistic_probe(inverse_regularization, max_iterations, tolerance, seed, solver="lbfgs"),
            train_features,
            train_labels,
            cv=cross_validation_folds(train_labels, folds, seed),
            scoring="accuracy",
        )
    return CrossValidatedAccuracy(accuracy=float(np.mean(accuracies)), converged=_converged(caught))

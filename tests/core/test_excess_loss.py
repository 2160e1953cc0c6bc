"""ntps.core.excess_loss: the exact excess loss against explicit least-squares fits, and Theorem 2's bounds."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from ntps.core.excess_loss import Whitening, excess_loss_all_k, theorem2_bounds
from ntps.core.linalg import NestedBasis
from ntps.core.ntps import (
    ntps_paper_all_k,
    score_tables,
)
from ntps.core.subspaces import (
    layer_subspaces,
    perception_subspace,
    regularized,
    signal_rank,
)
from tests.core.paper_reference import algorithm1_ntps
from tests.core.synthetic import HIDDEN, accumulate, labelled_features, planted_pencils, random_texts


def exact_loss(mean_xx, mean_xy, v, ridge):
    return excess_loss_all_k(mean_xy, Whitening.of(mean_xx, NestedBasis(v), ridge))


def test_theorem2_excess_ols_loss_is_bounded_by_ntps():
    rng = np.random.default_rng(9)
    features, targets = labelled_features(rng)
    n, d = features.shape
    n_moment, m_moment = features.T @ features / n, features.T @ targets / n
    perception = perception_subspace(n_moment, m_moment, ridge=0.0)
    k = signal_rank(m_moment)
    u, lam = perception.eigenvectors[:, :k], perception.eigenvalues[:k]

    def ols_loss(encoder):
        encoded = features @ encoder
        z, *_ = np.linalg.lstsq(encoded, targets, rcond=None)
        return float(((encoded @ z - targets) ** 2).sum(axis=1).mean())

    n_eigenvalues = np.linalg.eigvalsh(n_moment)
    c_min = n_eigenvalues.min() * lam.min() * (u**2).sum()
    c_max = n_eigenvalues.max() * lam.max() * (u**2).sum()
    checked = 0
    for trial in range(30):
        v = rng.normal(size=(d, k)) + (trial % 3) * u  # from unrelated to nearly aligned
        excess = ols_loss(v) - ols_loss(u)
        misalignment = 1 - algorithm1_ntps(u, v, k)
        assert c_min * misalignment - 1e-12 <= excess <= c_max * misalignment + 1e-12
        checked += misalignment > 1e-3
    assert checked > 20


def test_excess_loss_equals_explicit_least_squares_fits():
    rng = np.random.default_rng(12)
    n, d, c = 500, 9, 4
    labels = rng.integers(0, c, size=n)
    targets = np.eye(c)[labels]
    features = rng.normal(size=(n, d)) * np.exp(rng.normal(size=d)) + targets @ rng.normal(size=(c, d))
    v = rng.normal(size=(d, d))
    loss = exact_loss(features.T @ features / n, features.T @ targets / n, v, ridge=0.0)

    def least_squares_loss(inputs):
        weights, *_ = np.linalg.lstsq(inputs, targets, rcond=None)
        return float(((inputs @ weights - targets) ** 2).sum(axis=1).mean())

    best = least_squares_loss(features)
    for k in (1, 2, 4, 7, d):
        assert loss.excess[k - 1] == pytest.approx(least_squares_loss(features @ v[:, :k]) - best, abs=1e-9)
    assert loss.excess[-1] == pytest.approx(0.0, abs=1e-12)
    assert loss.explainable == pytest.approx(float((targets**2).sum(axis=1).mean()) - best, abs=1e-9)
    assert np.all(np.diff(loss.excess) <= 1e-12)
    assert np.all((loss.kept_share >= -1e-12) & (loss.kept_share <= 1 + 1e-12))


def test_theorem2_bounds_hold_where_its_proof_applies_and_are_flagged_where_not():
    rng = np.random.default_rng(13)
    features, targets = labelled_features(rng)
    (n, d), c = features.shape, targets.shape[1]
    n_moment, m_moment = features.T @ features / n, features.T @ targets / n
    perception = perception_subspace(n_moment, m_moment, ridge=0.0)
    checked = 0
    for trial in range(20):
        v = rng.normal(size=(d, d)) + (trial % 3) * perception.eigenvectors
        whitening = Whitening.of(n_moment, NestedBasis(v), ridge=0.0)
        paper = ntps_paper_all_k(perception.eigenvectors, v)
        bounds = theorem2_bounds(
            excess_loss_all_k(m_moment, whitening), perception.eigenvalues, perception.eigenvectors, paper, whitening
        )
        # From k = r = c on, the proof's identity T(V_k) = sum_{i<=k} Lambda_i ||V*^T u*_i||^2 holds.
        assert bounds.holds[c - 1 :].all()
        assert np.all(bounds.lower[c - 1 :] <= bounds.excess_loss_vs_u[c - 1 :] + 1e-12)
        checked += int((bounds.lower[c - 1] > 1e-6) and (1 - paper[c - 1] > 1e-3))
    assert checked > 10

    # k = 1 < r: V_1 = e2 holds almost all that U_1 = e1 explains, yet NTPS(U_1, V_1) = 0, so eq. (41)'s
    # lower bound Lambda_1 (1 - 0) exceeds the true excess loss Lambda_1 - Lambda_2.
    planted = planted_pencils()
    eigen = perception_subspace(planted["mean_xx"], planted["mean_xy"], ridge=0.0)
    swapped = np.eye(12)[:, [1, 0, *range(2, 12)]]
    whitening = Whitening.of(planted["mean_xx"], NestedBasis(swapped), ridge=0.0)
    bounds = theorem2_bounds(
        excess_loss_all_k(planted["mean_xy"], whitening),
        eigen.eigenvalues,
        eigen.eigenvectors,
        ntps_paper_all_k(eigen.eigenvectors, swapped),
        whitening,
    )
    assert bounds.excess_loss_vs_u[0] == pytest.approx(1.0) and bounds.lower[0] == pytest.approx(12.0)
    assert not bounds.holds[0] and bounds.holds[1]


def test_excess_loss_is_unchanged_when_the_states_and_v_move_with_an_invertible_map():
    rng = np.random.default_rng(14)
    n, d, c = 300, 9, 4
    targets = np.eye(c)[rng.integers(0, c, size=n)]
    features = rng.normal(size=(n, d)) + targets @ rng.normal(size=(c, d))
    v = rng.normal(size=(d, d))
    mixing = rng.normal(size=(d, d)) + 3 * np.eye(d)
    mapped = features @ mixing.T  # m -> A m, so V -> A^(-T) V sees the same features V^T m
    original = exact_loss(features.T @ features / n, features.T @ targets / n, v, ridge=0.0)
    moved = exact_loss(mapped.T @ mapped / n, mapped.T @ targets / n, np.linalg.solve(mixing.T, v), ridge=0.0)
    np.testing.assert_allclose(moved.excess, original.excess, atol=1e-10)
    assert moved.explainable == pytest.approx(original.explainable, rel=1e-10)
    assert original.excess[0] > 1e-3


def test_pipeline_excess_loss_is_unchanged_by_a_scaled_rotation_of_the_hidden_states():
    # V's eigenproblem measures next-token error in the states' own Euclidean norm, so V moves with
    # the map for a rotation times a scale; for a general invertible map V's span itself changes.
    rng = np.random.default_rng(16)
    texts, labels = random_texts(rng, n_texts=80, max_length=8)
    rotation = 2.5 * scipy.stats.ortho_group.rvs(HIDDEN, random_state=17)
    tables = []
    for states in (texts, [[x @ rotation.T for x in layer_texts] for layer_texts in texts]):
        statistics = accumulate(states, labels)
        tables.append(score_tables(statistics, layer_subspaces(statistics, ridge=0.0), 0.0, [0.5])[1])
    original, mapped = tables
    scale = original["explainable_label_variance"].abs().max()
    np.testing.assert_allclose(mapped["excess_loss"], original["excess_loss"], atol=1e-8 * scale)
    np.testing.assert_allclose(mapped["explainable_label_variance"], original["explainable_label_variance"], rtol=1e-8)
    assert original["excess_loss"].max() > 1e-3 * scale  # not trivially zero
    assert (original.groupby("layer")["excess_loss"].last().abs() < 1e-10 * scale).all()  # V_d spans everything


def exact_explained(mean_xx, mean_xy, v, ridge) -> np.ndarray:
    """T(k) = ||R_k^-T V_k^T M||^2, R^T R = V^T N V, in 50-digit arithmetic (mpmath) on the given
    float64 inputs: the exact value both factorizations round."""
    mpmath.mp.dps = 50
    n, v_mp = mpmath.matrix(regularized(mean_xx, ridge).tolist()), mpmath.matrix(v.tolist())
    lower = mpmath.cholesky(v_mp.T * n * v_mp)
    projected = v_mp.T * mpmath.matrix(mean_xy.tolist())
    columns = [mpmath.lu_solve(lower, projected.column(j)) for j in range(projected.cols)]
    return np.cumsum([float(sum(column[i] ** 2 for column in columns)) for i in range(projected.rows)])


@pytest.mark.parametrize("stored", [True, False])
def test_excess_loss_through_the_gram_matrix_of_the_whitened_basis_is_exact_to_rounding(stored):
    # meanXX over fourteen decades with the eigen stage's ridge, labels in every direction, and V
    # from an equally ill-conditioned cov0 (B-orthonormal, cond ~5e3) or as the eigen stage stores it.
    rng = np.random.default_rng(14)
    d, c, ridge = 60, 5, 1e-6
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0]
    mean_xx = (rotation * np.logspace(-12, 2, d)) @ rotation.T
    mean_xy = rng.normal(size=(d, c)) * 1e-3
    cov0 = (rotation[::-1] * np.logspace(-12, 2, d)) @ rotation[::-1].T
    root = rng.normal(size=(d, d))
    v = scipy.linalg.eigh(root @ root.T, regularized(cov0, ridge))[1][:, ::-1]
    if stored:
        v = np.linalg.qr(v)[0].astype(np.float32).astype(np.float64)
    loss = exact_loss(mean_xx, mean_xy, v, ridge)
    # Measured: 1.0e-10 and 1.3e-10 (a Householder QR of L^T V, which forms no Gram matrix: 2.6e-11).
    assert np.abs(loss.explained - exact_explained(mean_xx, mean_xy, v, ridge)).max() <= 1e-9 * loss.explainable

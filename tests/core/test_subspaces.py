"""ntps.core.subspaces: the generalized eigenproblems."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from ntps.core.errors import NtpsInputError
from ntps.core.ntps import score_tables
from ntps.core.subspaces import (
    LayerSubspaces,
    generalized_eigenspace,
    layer_subspaces,
    perception_subspace,
    signal_rank,
)
from tests.core.paper_reference import algorithm1_ntps
from tests.core.synthetic import statistics_of, synthetic_moments


def test_subspaces_are_b_orthonormal_generalized_eigenvectors():
    rng = np.random.default_rng(5)
    root = rng.normal(size=(6, 6))
    a, b = root @ root.T, np.cov(rng.normal(size=(6, 30)))
    solution = generalized_eigenspace(a, b, ridge=0.0)
    w, lam = solution.eigenvectors, solution.eigenvalues
    assert np.all(np.diff(lam) <= 0)
    np.testing.assert_allclose(w.T @ b @ w, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(a @ w, b @ w * lam, atol=1e-8 * np.abs(a).max())


@pytest.mark.parametrize("n_texts", [400, 40])  # more texts than dimensions, and fewer (ridge-bound)
def test_stored_subspaces_take_half_the_bytes_and_score_as_the_float64_ones(n_texts):
    rng = np.random.default_rng(22)
    statistics = statistics_of(synthetic_moments(rng, n_texts=n_texts, d=64, c=5))
    subspaces = layer_subspaces(statistics, ridge=1e-6)
    stored = subspaces.to_arrays()
    float64_bytes = sum(value.nbytes for value in vars(subspaces).values())
    assert sum(value.nbytes for value in stored.values()) < 0.55 * float64_bytes
    basis = stored["autoregressive_basis"][0].astype(np.float64)
    np.testing.assert_allclose(basis.T @ basis, np.eye(64), atol=1e-6)  # orthonormal, to float32
    restored = LayerSubspaces.from_arrays(stored)
    original_scores, original_losses = score_tables(statistics, subspaces, 1e-6, [0.5], released_code=False)
    scores, losses = score_tables(statistics, restored, 1e-6, [0.5], released_code=False)
    np.testing.assert_allclose(scores["ntps"], original_scores["ntps"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(losses["label_variance_kept"], original_losses["label_variance_kept"], rtol=0, atol=1e-6)


def test_perception_subspace_solves_eq9_with_every_column_n_orthonormal():
    rng = np.random.default_rng(30)
    moments = synthetic_moments(rng, n_texts=200, d=16, c=4)
    n, m = moments["mean_xx"], moments["mean_xy"]
    solution = perception_subspace(n, m, ridge=0.0)
    u, values = solution.eigenvectors, solution.eigenvalues
    np.testing.assert_allclose(u.T @ n @ u, np.eye(16), atol=1e-9)
    np.testing.assert_allclose(m @ m.T @ u, n @ u * values, atol=1e-9 * np.abs(m @ m.T).max())
    assert np.all(np.diff(values) <= 0) and np.count_nonzero(values) == signal_rank(m) == 4
    # The nonzero eigenvalues and their eigenvectors are the general solver's (unique up to sign).
    general = generalized_eigenspace(m @ m.T, n, ridge=0.0)
    np.testing.assert_allclose(values[:4], general.eigenvalues[:4], rtol=1e-9)
    signs = np.sign((u[:, :4] * general.eigenvectors[:, :4]).sum(axis=0))
    np.testing.assert_allclose(u[:, :4] * signs, general.eigenvectors[:, :4], atol=1e-8 * np.abs(u).max())


def test_perception_basis_of_eigenvalue_0_is_the_principal_axes_of_meanxx_there():
    rng = np.random.default_rng(31)
    moments = synthetic_moments(rng, n_texts=200, d=16, c=4)
    n, m = moments["mean_xx"], moments["mean_xy"]
    label_free = perception_subspace(n, m, ridge=0.0).eigenvectors[:, 4:]
    np.testing.assert_allclose(m.T @ label_free, 0, atol=1e-10 * np.abs(m).max())
    # Orthogonal as well as N-orthonormal, so each column's squared length is 1 / its variance:
    # the columns come by descending variance of the mean states.
    lengths = (label_free**2).sum(axis=0)
    np.testing.assert_allclose(label_free.T @ label_free, np.diag(lengths), atol=1e-10 * lengths.max())
    assert np.all(np.diff(lengths) > 0)
    # Any other N-orthonormal basis of null(M^T) holds no direction of more variance than the first.
    other = label_free @ scipy.stats.ortho_group.rvs(12, random_state=32)
    assert (other**2).sum(axis=0).min() > lengths[0]


def test_perception_subspace_turns_with_the_hidden_states():
    rng = np.random.default_rng(33)
    moments = synthetic_moments(rng, n_texts=200, d=16, c=4)
    n, m = moments["mean_xx"], moments["mean_xy"]
    rotation = scipy.stats.ortho_group.rvs(16, random_state=34)
    u = perception_subspace(n, m, ridge=1e-6).eigenvectors
    turned = perception_subspace(rotation @ n @ rotation.T, rotation @ m, ridge=1e-6).eigenvectors
    signs = np.sign((turned * (rotation @ u)).sum(axis=0))
    np.testing.assert_allclose(turned * signs, rotation @ u, atol=1e-8 * np.abs(u).max())


def test_perception_basis_beyond_the_signal_rank_does_not_hang_on_rounding():
    # A general eigensolver's basis of the zero eigenspace jumps under last-bit changes (measured on
    # these moments with scipy's sygv: `paper` beyond r moved by 0.027 when the classes were
    # renumbered and by 0.05 when meanXX moved by 1e-15); the closed form's does not.
    rng = np.random.default_rng(3)
    moments = synthetic_moments(rng, n_texts=300, d=40, c=4)
    n, m = moments["mean_xx"], moments["mean_xy"]
    v = np.linalg.qr(rng.normal(size=(40, 40)))[0]
    nudged = n * (1 + 1e-15 * rng.normal(size=n.shape))
    scores = []
    for mean_xx, mean_xy in ((n, m), (n, m[:, [2, 0, 3, 1]]), ((nudged + nudged.T) / 2, m)):
        u = perception_subspace(mean_xx, mean_xy, ridge=1e-6).eigenvectors
        scores.append(np.asarray([algorithm1_ntps(u, v, k) for k in range(1, 41)]))
    assert scores[0][4:].std() > 1e-3  # beyond r = 4 the scores vary, so the comparison means something
    np.testing.assert_allclose(scores[1], scores[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(scores[2], scores[0], rtol=0, atol=1e-10)


def test_perception_subspace_refuses_what_it_cannot_solve():
    n = np.eye(5)
    with pytest.raises(NtpsInputError, match="meanXY must be"):
        perception_subspace(n, np.ones((4, 2)), ridge=0.0)
    with pytest.raises(NtpsInputError, match="NaN"):
        perception_subspace(n, np.full((5, 2), np.nan), ridge=0.0)
    with pytest.raises(NtpsInputError, match="numerically singular"):
        perception_subspace(np.diag([1.0, 1.0, 1.0, 1.0, 0.0]), np.ones((5, 2)), ridge=0.0)
    with pytest.raises(NtpsInputError, match="every hidden state is zero"):
        perception_subspace(np.zeros((5, 5)), np.ones((5, 2)), ridge=1e-6)

"""ntps.core.subspaces: the generalized eigenproblems."""

from __future__ import annotations

import numpy as np
import pytest

from ntps.core.ntps import score_tables
from ntps.core.subspaces import LayerSubspaces, generalized_eigenspace, layer_subspaces
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

"""ntps.core.subspaces: the generalized eigenproblems."""

from __future__ import annotations

import numpy as np

from ntps.core.subspaces import (
    generalized_eigenspace,
)


def test_subspaces_are_b_orthonormal_generalized_eigenvectors():
    rng = np.random.default_rng(5)
    root = rng.normal(size=(6, 6))
    a, b = root @ root.T, np.cov(rng.normal(size=(6, 30)))
    solution = generalized_eigenspace(a, b, ridge=0.0)
    w, lam = solution.eigenvectors, solution.eigenvalues
    assert np.all(np.diff(lam) <= 0)
    np.testing.assert_allclose(w.T @ b @ w, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(a @ w, b @ w * lam, atol=1e-8 * np.abs(a).max())

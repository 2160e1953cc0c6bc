"""A slow, literal transcription of how the authors' released code scores one layer.

Read from the public repository Yu-AngCheng/NTPS, K_sweep.py: `nullspace_eig_generalized` solves
each pencil, `alignment_score` (dense path, sparse_k=0) casts the statistics to float32 and scores
19 fractions. Written out here step by step, every intermediate kept, so that the production code
(ntps.core.released_code) can be checked against it.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def whitened_pencil_solution(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """eigh(B); keep eigenvalues > 1e-8; W = U_r inv(sqrt(diag(s_r))); eigh(W^T A W); X = W y."""
    b_eigenvalues, b_eigenvectors = scipy.linalg.eigh(b)
    keep = b_eigenvalues > 1e-8
    u_r = b_eigenvectors[:, keep]
    s_r = np.diag(b_eigenvalues[keep])
    w = u_r @ np.linalg.inv(np.sqrt(s_r))
    a_whitened = w.T @ a @ w
    eigenvalues, y = scipy.linalg.eigh(a_whitened)
    return eigenvalues, w @ y


def released_dense_scores(mean_xy, mean_xx, cov1, cov0) -> list[tuple[int, int, float]]:
    """(U columns, V columns, score) for f in np.arange(0.05, 1.0, 0.05), eigh's order kept."""
    mean_xy = mean_xy.astype(np.float32)
    mean_xx = mean_xx.astype(np.float32)
    cov1 = cov1.astype(np.float32)
    cov0 = cov0.astype(np.float32)
    _, u = whitened_pencil_solution(mean_xy @ mean_xy.T, mean_xx)
    _, v = whitened_pencil_solution(cov1 @ cov1.T, cov0)
    results = []
    for fraction in np.arange(0.05, 1.0, 0.05):
        u_f = u[:, : int(fraction * u.shape[1])]
        v_f = v[:, : int(fraction * v.shape[1])]
        projector = v_f @ np.linalg.pinv(v_f)
        with np.errstate(invalid="ignore"):
            score = np.linalg.norm(projector @ u_f, "fro") ** 2 / np.linalg.norm(u_f, "fro") ** 2
        results.append((u_f.shape[1], v_f.shape[1], float(score)))
    return results

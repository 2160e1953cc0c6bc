"""A slow, literal transcription of the paper's Algorithm 1, used as the reference in tests.

Explicit L1/L2 selection matrices per text, a Python loop over texts, and a Moore-Penrose
pseudo-inverse per k, exactly as written in Appendix A.2 and A.4.
"""

from __future__ import annotations

import numpy as np


def selection_matrices(length: int) -> tuple[np.ndarray, np.ndarray]:
    """L1 = [Q_{l-1}; 0] with Q unit upper triangular, L2 = [0; I_{l-1}] (eqs. 21-22)."""
    l1 = np.zeros((length, length - 1))
    l1[: length - 1] = np.triu(np.ones((length - 1, length - 1)))
    l2 = np.zeros((length, length - 1))
    l2[1:] = np.eye(length - 1)
    return l1, l2


def algorithm1_statistics(texts: list[np.ndarray], labels: list[int], n_classes: int) -> dict[str, np.ndarray]:
    """Lines 1-12 of Algorithm 1.

    Args:
        texts: per text its token states X^l of shape (l, d), real tokens only.
        labels: per text its label id.
    Returns:
        meanXX (d, d), meanXY (d, c), cov0 (d, d), cov1 (d, d), all divided by n.
    """
    n, d = len(texts), texts[0].shape[1]
    mean_xx, mean_xy = np.zeros((d, d)), np.zeros((d, n_classes))
    cov0, cov1 = np.zeros((d, d)), np.zeros((d, d))
    for x, label in zip(texts, labels):
        y = np.eye(n_classes)[label]
        mean_state = x.mean(axis=0)
        mean_xx += np.outer(mean_state, mean_state) / n
        mean_xy += np.outer(mean_state, y) / n
        if x.shape[0] > 1:
            l1, l2 = selection_matrices(x.shape[0])
            cov0 += x.T @ l1 @ l1.T @ x / n
            cov1 += x.T @ l1 @ l2.T @ x / n
    return {"mean_xx": mean_xx, "mean_xy": mean_xy, "cov0": cov0, "cov1": cov1}


def algorithm1_ntps(u: np.ndarray, v: np.ndarray, k: int, u_columns: int | None = None) -> float:
    """Lines 15-17: P_k = V_k V_k^+, NTPS = ||P_k U_k||_F^2 / ||U_k||_F^2.

    u_columns overrides how many columns of U are used (the `signal` variant uses r).
    """
    u_k = u[:, : (k if u_columns is None else u_columns)]
    v_k = v[:, :k]
    projector = v_k @ np.linalg.pinv(v_k)
    return float(np.linalg.norm(projector @ u_k) ** 2 / np.linalg.norm(u_k) ** 2)

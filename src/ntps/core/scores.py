"""NTPS(U_k, V_k) = ||P_{V_k} U_k||_F^2 / ||U_k||_F^2 for every k at once.

With V = Q R (QR, V of full column rank) the span of V's first k columns is the span of Q's
first k columns, so P_{V_k} = Q_k Q_k^T and ||P_{V_k} u_j||^2 = sum_{i<=k} (q_i . u_j)^2. With
G = (Q^T U)**2 elementwise, the numerator for every k is a two-dimensional prefix sum of G,
read on its diagonal: one QR and one matrix product per layer instead of a pseudo-inverse per k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ntps.core.errors import NtpsInputError


def _squared_alignments(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """G[i, j] = (q_i . u_j)^2 with Q the orthonormal basis of V's leading columns; (d, m)."""
    if u.ndim != 2 or v.ndim != 2 or u.shape[0] != v.shape[0]:
        raise NtpsInputError(f"U and V must be (d, .) matrices of equal d, got {u.shape} and {v.shape}")
    orthonormal, _ = np.linalg.qr(v)
    return (orthonormal.T @ u) ** 2


def ntps_paper_all_k(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Algorithm 1's NTPS(U_k, V_k) for k = 1..d.

    Args:
        u: (d, d) perception eigenvectors, descending eigenvalue order.
        v: (d, d) autoregressive eigenvectors, descending eigenvalue order.
    Returns:
        (d,) array; entry k-1 is NTPS with the top k columns of both.
    """
    g = _squared_alignments(u, v)
    captured = np.diagonal(g.cumsum(axis=0).cumsum(axis=1))
    total = (u**2).sum(axis=0).cumsum()
    return captured / total


def ntps_signal_all_k(u: np.ndarray, v: np.ndarray, rank: int) -> np.ndarray:
    """NTPS(U_r, V_k) for k = 1..d with U_r the r eigenvectors of nonzero eigenvalue.

    Args:
        u: (d, >= r) perception eigenvectors, descending eigenvalue order.
        v: (d, d) autoregressive eigenvectors.
        rank: r, the number of nonzero perception eigenvalues.
    Returns:
        (d,) array; entry k-1 is the share of U_r captured by span(V_k).
    """
    if not 1 <= rank <= u.shape[1]:
        raise NtpsInputError(f"signal rank must lie in 1..{u.shape[1]}, got {rank}")
    signal = u[:, :rank]
    g = _squared_alignments(signal, v)
    return g.cumsum(axis=0).sum(axis=1) / (signal**2).sum()


def ntps_score(u: np.ndarray, v: np.ndarray, k: int) -> float:
    """NTPS(U_k, V_k) for one k in 1..d, computed with Algorithm 1's projector V_k V_k^+."""
    d = u.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
        raise NtpsInputError(f"k must be an integer in 1..{d} (the hidden size), got {k!r}")
    u_k, v_k = u[:, :k], v[:, :k]
    projected = v_k @ (np.linalg.pinv(v_k) @ u_k)
    return float((projected**2).sum() / (u_k**2).sum())


def paper_grid_ks(hidden_size: int, fractions: list[float]) -> np.ndarray:
    """The integer k for each fraction of the hidden size (the paper's 0.05..0.95 grid).

    Returns:
        (len(fractions),) int array, each round(f * d) clipped to 1..d.
    """
    if hidden_size < 1:
        raise NtpsInputError(f"hidden size must be positive, got {hidden_size}")
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise NtpsInputError(f"k fractions must lie in (0, 1], got {bad}")
    return np.clip(np.rint(np.asarray(fractions) * hidden_size).astype(int), 1, hidden_size)


VARIANTS = ("paper", "signal")


def score_table(
    perception_vectors: np.ndarray,
    autoregressive_vectors: np.ndarray,
    signal_ranks: np.ndarray,
    paper_fractions: list[float],
) -> pd.DataFrame:
    """Both NTPS variants for every layer and every k.

    Args:
        perception_vectors: (L, d, d) U per layer.
        autoregressive_vectors: (L, d, d) V per layer.
        signal_ranks: (L,) r per layer.
        paper_fractions: fractions of d flagged as the paper's grid (0.05..0.95).
    Returns:
        Long table with 2 * L * d rows: layer, k, k_fraction, on_paper_grid, variant,
        signal_rank, ntps.
    """
    n_layers, d, _ = perception_vectors.shape
    ks = np.arange(1, d + 1)
    on_grid = np.isin(ks, paper_grid_ks(d, paper_fractions))
    frames = []
    for layer in range(n_layers):
        u, v, rank = perception_vectors[layer], autoregressive_vectors[layer], int(signal_ranks[layer])
        for variant, scores in (
            ("paper", ntps_paper_all_k(u, v)),
            ("signal", ntps_signal_all_k(u, v, rank)),
        ):
            frames.append(
                pd.DataFrame(
                    {
                        "layer": layer,
                        "k": ks,
                        "k_fraction": ks / d,
                        "on_paper_grid": on_grid,
                        "variant": variant,
                        "signal_rank": rank,
                        "ntps": scores,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)

"""NTPS as the authors' released code scores it, so this project's numbers line up with theirs.

The public repository Yu-AngCheng/NTPS scores statistics in K_sweep.py (`alignment_score`, dense
path, `sparse_k=0`, its default) with eigenvectors from `nullspace_eig_generalized`. It differs
from Algorithm 1 as the paper writes it (this project's `paper` variant) in four ways, each
reproduced here step for step in float32:

1. the four averaged statistics are cast to float32 before any eigen work;
2. the pencil (A, B) is solved by whitening, not by a generalized solver and not with a ridge:
   eigh(B), B's eigenvalues not above an absolute 1e-8 dropped, W = U_r S_r^(-1/2),
   eigh(W^T A W), eigenvectors X = W y, so U has rank_U = #kept columns and V rank_V;
3. the columns stay in the order `eigh` returns them, ascending eigenvalue: a fraction f scores
   the int(f * rank) directions of *smallest* eigenvalue, where the paper says "top k";
4. U and V are cut separately, int(f * rank_U) and int(f * rank_V) columns, for the 19 fractions
   np.arange(0.05, 1.0, 0.05), and the score is ||V_f V_f^+ U_f||_F^2 / ||U_f||_F^2 with the
   projector formed first.

`top_first=True` runs the same procedure with the columns reversed (largest eigenvalue first), to
separate the effect of the ordering from that of float32 and whitening.

Which machine runs it changes the numbers: OpenBLAS orders its float32 sums by how it splits work
between its threads, and the released scores move by up to 0.08 with that alone (docs/parity.md).
So every BLAS and LAPACK call here runs on one thread by default, which makes the scores the same
on 2 cores and on 16, and the two pencils, then the 19 fractions, run side by side, one per core
(float32 SVDs gain almost nothing from a second BLAS thread).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from ntps.core.errors import NtpsInputError

# Kept as np.arange computes them: int(f * rank) of these floats decides each column count.
RELEASED_FRACTIONS = np.arange(0.05, 1.0, 0.05)
# B's eigenvalues at or below this absolute value are dropped before whitening.
RELEASED_EIGENVALUE_FLOOR = 1e-8


@dataclass
class WhitenedEigenvectors:
    """Solution of A x = lambda B x restricted to B's range, in float32.

    Attributes:
        eigenvalues: (rank,) in the order the columns are kept.
        eigenvectors: (d, rank) float32, X = W y with W = U_r S_r^(-1/2).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray

    @property
    def rank(self) -> int:
        return self.eigenvectors.shape[1]


def whitened_eigenvectors(a: np.ndarray, b: np.ndarray, top_first: bool = False) -> WhitenedEigenvectors:
    """Generalized eigenvectors of (A, B) the way the released code solves them.

    Args:
        a: (d, d) symmetric, cast to float32.
        b: (d, d) symmetric positive semi-definite, cast to float32.
        top_first: reverse eigh's ascending order (the paper's "top k"); False keeps it.
    """
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise NtpsInputError(f"A and B must be square of the same shape, got {a.shape} and {b.shape}")
    a32, b32 = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if not (np.isfinite(a32).all() and np.isfinite(b32).all()):
        raise NtpsInputError("statistics contain NaN or infinite values (or overflow float32)")
    b_values, b_vectors = scipy.linalg.eigh(b32)
    kept = b_values > RELEASED_EIGENVALUE_FLOOR
    if not kept.any():
        raise NtpsInputError(f"every eigenvalue of B is at most {RELEASED_EIGENVALUE_FLOOR}: nothing to whiten")
    # Scaling each column by 1/sqrt(s) rounds exactly as multiplying by the diagonal inverse does.
    # C order, as that matrix product returns it: the layout sets BLAS's summation order below, and
    # inside U's degenerate eigenspace a last-bit difference there moves the scores by up to 0.1.
    inverse_roots = np.float32(1.0) / np.sqrt(b_values[kept])
    whitening = np.ascontiguousarray(b_vectors[:, kept] * inverse_roots)
    eigenvalues, rotations = scipy.linalg.eigh((whitening.T @ a32) @ whitening)
    eigenvectors = whitening @ rotations
    if top_first:
        eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    return WhitenedEigenvectors(eigenvalues=eigenvalues, eigenvectors=np.ascontiguousarray(eigenvectors))


@dataclass
class ReleasedScores:
    """The released score at each fraction.

    Attributes:
        fractions: (F,) the fractions f.
        u_columns: (F,) int(f * rank_U), the number of U columns scored (0: score undefined).
        v_columns: (F,) int(f * rank_V).
        scores: (F,) ||V_f V_f^+ U_f||_F^2 / ||U_f||_F^2; NaN where U_f has no column (0 / 0),
            0 where only V_f has none (an empty projector).
    """

    fractions: np.ndarray
    u_columns: np.ndarray
    v_columns: np.ndarray
    scores: np.ndarray


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _fraction_score(perception: np.ndarray, autoregressive: np.ndarray, n_u: int, n_v: int) -> float:
    """||V_f V_f^+ U_f||_F^2 / ||U_f||_F^2 with the projector formed first; NaN without U columns."""
    if n_u == 0:
        return np.nan
    u_f, v_f = perception[:, :n_u], autoregressive[:, :n_v]
    projector = v_f @ np.linalg.pinv(v_f)
    return float(np.linalg.norm(projector @ u_f) ** 2 / np.linalg.norm(u_f) ** 2)


def released_alignment_scores(
    mean_xx: np.ndarray,
    mean_xy: np.ndarray,
    cov0: np.ndarray,
    cov1: np.ndarray,
    fractions: np.ndarray = RELEASED_FRACTIONS,
    top_first: bool = False,
    blas_threads: int | None = 1,
) -> ReleasedScores:
    """The released code's dense NTPS of one layer from its averaged statistics.

    Args:
        mean_xx: (d, d) E[m m^T].
        mean_xy: (d, c) E[m y^T].
        cov0: (d, d) E[sum_i S_i S_i^T].
        cov1: (d, d) E[sum_i S_i h_{i+1}^T].
        fractions: the fractions f of each rank to score.
        top_first: score the largest-eigenvalue directions first instead of eigh's ascending order.
        blas_threads: BLAS threads per call; 1 gives the same scores whatever the core count (and
            runs as many calls at once as there are cores), None leaves BLAS as it is set, one
            call at a time (how far that moves the scores: benchmarks/released_code_parity.py).
    """
    if blas_threads is None:
        return _released_scores(mean_xx, mean_xy, cov0, cov1, fractions, top_first, map)
    with threadpool_limits(limits=blas_threads), ThreadPoolExecutor(max(1, _available_cores() // blas_threads)) as pool:
        return _released_scores(mean_xx, mean_xy, cov0, cov1, fractions, top_first, pool.map)


def _released_scores(
    mean_xx: np.ndarray,
    mean_xy: np.ndarray,
    cov0: np.ndarray,
    cov1: np.ndarray,
    fractions: np.ndarray,
    top_first: bool,
    map_calls: Callable[..., Iterable],
) -> ReleasedScores:
    """released_alignment_scores with its independent calls run by map_calls (map or a pool's)."""

    def pencil_solution(pencil: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        left, b = np.asarray(pencil[0], dtype=np.float32), pencil[1]
        return whitened_eigenvectors(left @ left.T, b, top_first).eigenvectors

    perception, autoregressive = map_calls(pencil_solution, [(mean_xy, mean_xx), (cov1, cov0)])
    fractions = np.asarray(fractions, dtype=np.float64)
    u_columns = np.array([int(f * perception.shape[1]) for f in fractions], dtype=np.int64)
    v_columns = np.array([int(f * autoregressive.shape[1]) for f in fractions], dtype=np.int64)
    # Largest first, so that the slowest SVDs do not come last.
    order = np.argsort(-v_columns, kind="stable")
    scores = np.full(len(fractions), np.nan)
    scores[order] = list(
        map_calls(
            lambda index: _fraction_score(perception, autoregressive, u_columns[index], v_columns[index]),
            order,
        )
    )
    return ReleasedScores(fractions=fractions, u_columns=u_columns, v_columns=v_columns, scores=scores)

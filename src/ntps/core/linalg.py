"""The dense float64 linear algebra of the eigen and scores stages, on the CPU with scipy or on an
accelerator with torch.linalg.

Every function takes numpy arrays and returns numpy arrays; `device` None runs scipy/LAPACK on the
CPU, a torch.device runs torch.linalg there (CUDA when the forward pass ran on a GPU). The torch
path solves the symmetric-definite pencil as LAPACK's sygvd does, by a Cholesky factor of B and a
standard symmetric eigenproblem, and orthonormalizes bases as `NestedBasis` does with scipy;
tests/core/test_linalg.py runs it on the CPU against scipy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch

from ntps.core.errors import NtpsInputError

logger = logging.getLogger(__name__)


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float64), device=device)


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.cpu().numpy()


def _torch_cholesky(a: torch.Tensor, upper: bool, what: str) -> torch.Tensor:
    """The Cholesky factor of symmetric positive definite A on A's device: L with A = L L^T, or R
    with A = R^T R (upper); raises np.linalg.LinAlgError, naming `what`, as the scipy path does."""
    factor, info = torch.linalg.cholesky_ex(a, upper=upper)
    if int(info) != 0:
        raise np.linalg.LinAlgError(f"{what} is not positive definite (leading minor {int(info)})")
    return factor


def matmul(a: np.ndarray, b: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """A B."""
    if device is None:
        return a @ b
    return _array(_tensor(a, device) @ _tensor(b, device))


def generalized_eigh(a: np.ndarray, b: np.ndarray, device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Solutions of A w = lambda B w, A symmetric, B symmetric positive definite; on the CPU by
    LAPACK's divide-and-conquer sygvd, which is faster than scipy's default sygv.

    Returns:
        (eigenvalues (d,) ascending, eigenvectors (d, d) with W^T B W = I).
    Raises:
        np.linalg.LinAlgError: B is not numerically positive definite.
    """
    if device is None:
        return scipy.linalg.eigh(a, b, driver="gvd")
    a_t, b_t = _tensor(a, device), _tensor(b, device)
    lower = _torch_cholesky(b_t, upper=False, what="B")
    # C = L^-1 A L^-T, symmetric; its eigenvectors Y give W = L^-T Y.
    half = torch.linalg.solve_triangular(lower, a_t, upper=False)
    c = torch.linalg.solve_triangular(lower, half.T, upper=False)
    eigenvalues, y = torch.linalg.eigh((c + c.T) / 2)
    return _array(eigenvalues), _array(torch.linalg.solve_triangular(lower.T, y, upper=True))


def symmetric_eigh(a: np.ndarray, device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues (m,) ascending, orthonormal eigenvectors (m, m)) of symmetric A (m, m); on the
    CPU by LAPACK's divide-and-conquer syevd."""
    if device is None:
        return scipy.linalg.eigh(a, driver="evd")
    eigenvalues, eigenvectors = torch.linalg.eigh(_tensor(a, device))
    return _array(eigenvalues), _array(eigenvectors)


# Directions whose squared singular value is below this share of the largest are dropped by
# left_singular_vectors: they are rounding, not variance.
RANK_TOLERANCE = 1e-12


def left_singular_vectors(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s^2 (r,), U (n, r)) of the thin SVD X = U diag(s) V^T of X (n, d), for the r singular values
    with s^2 above RANK_TOLERANCE times the largest; from the eigendecomposition of the smaller of
    X X^T and X^T X (half an SVD's cost; accurate for s^2 well above the tolerance)."""
    n, d = matrix.shape
    if n <= d:
        squared, u = np.linalg.eigh(matrix @ matrix.T)
        keep = squared > squared.max(initial=0.0) * RANK_TOLERANCE
        return squared[keep], u[:, keep]
    squared, v = np.linalg.eigh(matrix.T @ matrix)
    keep = squared > squared.max(initial=0.0) * RANK_TOLERANCE
    return squared[keep], (matrix @ v[:, keep]) / np.sqrt(squared[keep])


def orthonormal_factor(v: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """Q (d, k) of V = Q R (Householder QR, Q formed), V (d, k <= d) of full column rank: Q's first
    j columns span V's first j for every j. On a device by torch.linalg.qr, which on a GPU spares
    the host a d x d factorization per layer."""
    if device is None:
        return np.linalg.qr(v)[0]
    return _array(torch.linalg.qr(_tensor(v, device))[0])


class OrthonormalComplement:
    """The orthonormal complement P (d, d - r) of span(W), W (d, r) with orthonormal columns, held as
    the r Householder reflectors of W's QR and never formed: with Q = H_1 ... H_r = I - Y T Y^T
    (compact WY, Y (d, r) unit lower trapezoidal), P is Q's last d - r columns, so P^T A P and P E
    cost O(d^2 r) operations where a formed P costs products of O(d^3) (4 d^3 at r << d).

    T is the inverse of striu(Y^T Y) + diag(Y^T Y) / 2 (the "UT transform" of Joffrain et al.,
    2006): every H_j = I - 2 y_j y_j^T / (y_j^T y_j) is then an exact reflection, also where LAPACK
    left one as the identity (a column already reduced), which changes only the sign of one of Q's
    first r columns, not P.
    """

    def __init__(self, w: np.ndarray):
        d, rank = w.shape
        if rank > d:
            raise NtpsInputError(f"W must be (d, r) with r <= d, got {w.shape}")
        self.rank = rank
        if rank == 0:
            self.reflectors, self.t = np.zeros((d, 0)), np.zeros((0, 0))
            return
        packed = scipy.linalg.qr(w, mode="raw")[0][0]
        self.reflectors = np.tril(packed[:, :rank], -1)
        self.reflectors[np.arange(rank), np.arange(rank)] = 1.0
        gram = self.reflectors.T @ self.reflectors
        t_inverse = np.triu(gram, 1) + np.diag(np.diag(gram) / 2)
        self.t = scipy.linalg.solve_triangular(t_inverse, np.eye(rank), lower=False)

    def congruence(self, a: np.ndarray) -> np.ndarray:
        """P^T A P, (d - r, d - r), of symmetric A (d, d): the trailing block of Q^T A Q = A - Z Y^T - Y Z^T
        with Z = A Y T - Y C / 2, C = T^T Y^T A Y T, one product of rank 2 r."""
        y, r = self.reflectors, self.rank
        ayt = a @ y @ self.t
        z = ayt - y @ (self.t.T @ (y.T @ ayt)) / 2
        return a[r:, r:] - np.concatenate([z[r:], y[r:]], axis=1) @ np.concatenate([y[r:], z[r:]], axis=1).T

    def times(self, e: np.ndarray) -> np.ndarray:
        """P E, (d, m), for E (d - r, m): Q [0; E] = [0; E] - Y T Y[r:]^T E."""
        y, r = self.reflectors, self.rank
        lifted = np.zeros((y.shape[0], e.shape[1]))
        lifted[r:] = e
        lifted -= y @ (self.t @ (y[r:].T @ e))
        return lifted


# Cholesky QR keeps a basis orthonormal to rounding when its Gram matrix G = V^T V has
# ||G - I||_2 <= ||G - I||_F <= this: its loss of orthogonality grows as cond(V)^2, at most
# (1 + 1e-3) / (1 - 1e-3) here.
NEARLY_ORTHONORMAL = 1e-3
# A V whose ||V^T V - I||_2, as orthogonality_loss estimates it, is at most this is used as its own
# orthonormal basis (NestedBasis): the scores then move by at most about twice this, relative.
AS_ORTHONORMAL = 1e-6
# orthogonality_loss's block power iteration: its steps, and the columns of its block.
ORTHOGONALITY_STEPS = 3
ORTHOGONALITY_PROBES = 8


def _distance_from_identity(size: int, trace: float, squared_norm: float) -> float:
    """||G - I||_F from G's size, trace and squared Frobenius norm, without a d x d temporary."""
    return float(np.sqrt(max(squared_norm - 2 * trace + size, 0.0)))


def orthogonality_loss(v: np.ndarray) -> float:
    """||V^T V - I||_2 of finite V (d, k), estimated from below by ORTHOGONALITY_STEPS steps of
    block power iteration on V^T V - I from a seeded block of ORTHOGONALITY_PROBES random
    orthonormal columns. Each step is two thin products with V (4 d k b operations, against the
    d k^2 of forming V^T V). On a float32 rounding of an orthonormal matrix, whose V^T V - I has a
    spectrum like a random symmetric matrix's, it gives 0.85 of the exact norm
    (tests/core/test_linalg.py)."""
    columns = v.shape[1]
    block = np.linalg.qr(np.random.default_rng(0).normal(size=(columns, min(ORTHOGONALITY_PROBES, columns))))[0]
    for _ in range(ORTHOGONALITY_STEPS):
        block = np.linalg.qr(v.T @ (v @ block) - block)[0]
    return float(np.linalg.norm(v.T @ (v @ block) - block, 2))


class NestedBasis:
    """A basis Q (d, k), float64, orthonormal to within AS_ORTHONORMAL, with span(q_1..q_j) =
    span(v_1..v_j) for every j, from V (d, k <= d) of full column rank: the basis the all-k sweeps
    project onto.

    The eigen stage stores V as its orthonormal factor in float32 (LayerSubspaces.to_arrays): the V
    the scores stage loads has ||V^T V - I||_2 of about 7e-8 (7.2e-8 at d = 4,096). A V within
    AS_ORTHONORMAL (orthogonality_loss) is its own Q, with no factorization: with x = V_k^T u, the
    squared norm x^T x the sweeps sum is within ||V^T V - I||_2 / (1 - ||V^T V - I||_2), relative,
    of the exact projection's x^T (V_k^T V_k)^-1 x, and the sweeps divide by sums of the same kind
    (core.ntps), so the scores stay within [0, 1] and move by at most about twice that bound
    (tests/core/test_linalg.py), and it spares the scores stage a factorization of 2.3 d^3 of its
    7 d^3 operations. A V whose V^T V lies within NEARLY_ORTHONORMAL
    of I (Frobenius) is corrected by Cholesky QR, Q = V C^-1 with C^T C = V^T V and C upper
    triangular, which keeps each span and costs three BLAS-3 operations (a symmetric rank-k update,
    a Cholesky factorization, a triangular solve) instead of a Householder QR's slower panel
    factorization. Any other V, such as the solver's B-orthonormal V itself, gets a Householder QR
    with Q formed.

    Attributes:
        q: (d, k) Q.
        factorization: how Q came from V: "none" (Q is V), "cholesky_qr" or "householder_qr".
        device: where products with Q run (None: numpy on the CPU).
    """

    def __init__(self, v: np.ndarray, device: torch.device | None = None):
        if v.ndim != 2 or v.shape[1] > v.shape[0]:
            raise NtpsInputError(f"V must be (d, k) with k <= d, got {v.shape}")
        v = np.asarray(v, dtype=np.float64)
        if not np.isfinite(v).all():
            raise NtpsInputError("V contains NaN or infinite values")
        self.device = device
        if orthogonality_loss(v) <= AS_ORTHONORMAL:
            self.factorization, self.q = "none", v
            return
        columns = v.shape[1]
        if device is None:
            gram = v.T @ v
            distance = _distance_from_identity(columns, np.trace(gram), np.vdot(gram, gram))
        else:
            v_t = _tensor(v, device)
            gram = v_t.T @ v_t
            distance = _distance_from_identity(columns, float(gram.trace()), float((gram * gram).sum()))
        self.factorization = "cholesky_qr" if distance <= NEARLY_ORTHONORMAL else "householder_qr"
        if device is None and self.factorization == "cholesky_qr":
            # The Gram matrix is finite (V^T V is within NEARLY_ORTHONORMAL of I) and symmetric, so
            # LAPACK reads it as it lies.
            upper = _cholesky_in_place(gram, lower=False)
            self.q = scipy.linalg.solve_triangular(upper, v.T, trans="T", lower=False, check_finite=False).T
        elif self.factorization == "cholesky_qr":
            upper = _torch_cholesky(gram, upper=True, what="V's Gram matrix")
            self.q = _array(torch.linalg.solve_triangular(upper, v_t, upper=True, left=False))
        else:
            self.q = orthonormal_factor(v, device)

    def transpose_times(self, c: np.ndarray) -> np.ndarray:
        """Q^T C, (k, m) for C (d, m)."""
        return matmul(self.q.T, c, self.device)


# Rows and columns of G that nested_prefix_sums reads at a time.
PREFIX_BLOCK = 256


def nested_prefix_sums(g: np.ndarray) -> np.ndarray:
    """(k,) entry j-1: sum_{i, l <= j} G[i, l] for G (k, k), every leading block's sum, which grows
    at step j by row j up to the diagonal and column j above it. Read in strips of PREFIX_BLOCK rows
    and columns, with no k x k temporary (a copy of G's triangle)."""
    k = g.shape[0]
    increments = np.empty(k)
    for start in range(0, k, PREFIX_BLOCK):
        stop = min(start + PREFIX_BLOCK, k)
        diagonal_block = g[start:stop, start:stop]
        increments[start:stop] = (
            g[start:stop, :start].sum(axis=1)
            + g[:start, start:stop].sum(axis=0)
            + np.tril(diagonal_block).sum(axis=1)
            + np.triu(diagonal_block, 1).sum(axis=0)
        )
    return np.cumsum(increments)


def _cholesky_in_place(a: np.ndarray, lower: bool) -> np.ndarray:
    """The Cholesky factor of symmetric positive definite A (d, d), C-ordered and finite, written
    over A: L with A = L L^T (lower) or R with A = R^T R. LAPACK's potrf is handed A^T, which is A
    and already in the Fortran order LAPACK reads, so nothing is copied; scipy.linalg.cholesky
    copies A into Fortran order first. Raises
    np.linalg.LinAlgError when A is not numerically positive definite."""
    factor, info = scipy.linalg.lapack.dpotrf(a.T, lower=not lower, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"the matrix is not positive definite (potrf info {info})")
    return factor.T


def cholesky_lower(n: np.ndarray, device: torch.device | None = None, shift: float = 0.0) -> np.ndarray:
    """L with N + shift I = L L^T, N (d, d) symmetric positive definite (a ridge shift added to its
    diagonal), of which only the lower triangle is read: the symmetric part of a meanXX that
    LayerStatistics stores as one triangle would be itself, at the cost of a transposed pass over it.
    Raises np.linalg.LinAlgError when it is not positive definite,
    ValueError on NaN or infinite entries; N is left as it was."""
    if device is None:
        if not np.isfinite(n).all():
            raise ValueError("the matrix contains NaN or infinite values")
        shifted = np.array(n, dtype=np.float64, order="C")
        shifted.flat[:: shifted.shape[0] + 1] += shift
        return _cholesky_in_place(shifted, lower=True)
    n_t = _tensor(n, device)
    shifted = n_t + shift * torch.eye(n_t.shape[0], dtype=n_t.dtype, device=device)
    return _array(_torch_cholesky(shifted, upper=False, what="the matrix"))


def solve_lower(
    lower: np.ndarray, b: np.ndarray, device: torch.device | None = None, check_finite: bool = True
) -> np.ndarray:
    """L^-1 B for lower-triangular L. check_finite False skips scipy's pass over L and B, for
    arrays known to be finite (a Cholesky factor in an iteration, where that pass over all of L
    would cost as much as the solve itself)."""
    if device is None:
        return scipy.linalg.solve_triangular(lower, b, lower=True, check_finite=check_finite)
    return _array(torch.linalg.solve_triangular(_tensor(lower, device), _tensor(b, device), upper=False))


def solve_lower_transposed(
    lower: np.ndarray, b: np.ndarray, device: torch.device | None = None, check_finite: bool = True
) -> np.ndarray:
    """L^-T B for lower-triangular L (check_finite: as solve_lower)."""
    if device is None:
        return scipy.linalg.solve_triangular(lower, b, lower=True, trans="T", check_finite=check_finite)
    return _array(torch.linalg.solve_triangular(_tensor(lower.T, device), _tensor(b, device), upper=True))


def lower_transpose_times(lower: np.ndarray, b: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """L^T B for lower-triangular L (d, d) and B (d, m); on the CPU a triangular product (BLAS
    trmm), half a general product's operations."""
    if device is None:
        return scipy.linalg.blas.dtrmm(1.0, lower, b, lower=1, trans_a=1)
    return _array(_tensor(lower, device).T @ _tensor(b, device))


def gram_cholesky_upper(w: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """R (k, k) upper triangular with R^T R = W^T W, for W (d, k) of full column rank; raises
    np.linalg.LinAlgError when W^T W is not numerically positive definite."""
    if device is None:
        return _cholesky_in_place(w.T @ w, lower=False)
    w_t = _tensor(w, device)
    return _array(_torch_cholesky(w_t.T @ w_t, upper=True, what="the Gram matrix"))


def solve_upper_transposed(upper: np.ndarray, b: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """R^-T B for upper-triangular R."""
    if device is None:
        return scipy.linalg.solve_triangular(upper, b, lower=False, trans="T")
    return _array(torch.linalg.solve_triangular(_tensor(upper.T, device), _tensor(b, device), upper=False))


def extreme_eigenvalues(lower: np.ndarray, device: torch.device | None = None) -> tuple[float, float]:
    """(smallest, largest) eigenvalue of N = L L^T from its lower Cholesky factor L (d, d).

    On the CPU by Lanczos iteration (ARPACK): the largest of N applied as L (L^T x), the smallest
    as the reciprocal of N^-1's largest, applied as two triangular solves with L, each from the
    same seeded start (ARPACK's own is random), so that the same array gives the same digits. Two
    extreme eigenvalues of a factor at hand cost a few dozen products with it, not the O(d^3) of
    all d eigenvalues (benchmarks/ntps_benchmark.py --measure scores measures both). Where the
    spectrum is dense at an end (meanXX of about d texts: a Marchenko-Pastur edge) Lanczos needs
    thousands of products; after LANCZOS_RESTARTS it stops and every eigenvalue is computed
    instead. On an accelerator, all of N's.
    """
    d = lower.shape[0]
    if device is not None:
        lower_t = _tensor(lower, device)
        values = _array(torch.linalg.eigvalsh(lower_t @ lower_t.T))
        return float(values[0]), float(values[-1])
    if d < 3:  # ARPACK needs more dimensions than the eigenvalues it is asked for, plus one
        return _dense_extreme_eigenvalues(lower)
    start = np.random.default_rng(0).normal(size=d)
    try:
        largest = _largest_eigenvalue(lambda x: lower @ (lower.T @ x), d, start)
        # L is a Cholesky factor, so finite, and so are the Lanczos vectors.
        inverse_largest = _largest_eigenvalue(
            lambda x: solve_lower_transposed(lower, solve_lower(lower, x, check_finite=False), check_finite=False),
            d,
            start,
        )
    except scipy.sparse.linalg.ArpackNoConvergence:
        logger.info(
            "Lanczos did not converge on N's extreme eigenvalues within %d restarts (d = %d, a spectrum dense at "
            "an end); computing all of them",
            LANCZOS_RESTARTS,
            d,
        )
        return _dense_extreme_eigenvalues(lower)
    return 1.0 / inverse_largest, largest


def _dense_extreme_eigenvalues(lower: np.ndarray) -> tuple[float, float]:
    values = scipy.linalg.eigvalsh(lower @ lower.T)
    return float(values[0]), float(values[-1])


# ARPACK's implicit restarts per extreme eigenvalue, each 19 products with N or N^-1 after the first
# 20: meanXX-like spectra converge within them (tests/core/test_linalg.py), and they bound, at 210
# products, what a spectrum dense at its end costs before every eigenvalue is computed instead
# (benchmarks/ntps_benchmark.py --measure scores times both). ARPACK's default, 10 d restarts, took
# 2,351 solves at d = 600 (tests/core/test_linalg.py).
LANCZOS_RESTARTS = 10


def _largest_eigenvalue(apply: Callable[[np.ndarray], np.ndarray], d: int, start: np.ndarray) -> float:
    """The largest eigenvalue of the symmetric positive definite operator x -> apply(x), (d,) -> (d,);
    raises ArpackNoConvergence after LANCZOS_RESTARTS."""
    operator = scipy.sparse.linalg.LinearOperator((d, d), matvec=apply, dtype=np.float64)
    (value,) = scipy.sparse.linalg.eigsh(
        operator, k=1, which="LA", v0=start, maxiter=LANCZOS_RESTARTS, return_eigenvectors=False
    )
    return float(value)


def resolve_device(device: str) -> torch.device:
    """A device setting as torch reads it: "auto" is CUDA when a GPU is visible, else the CPU; a
    CUDA device that is not visible is refused by name."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NtpsInputError(f"device '{device}' was asked for but no CUDA GPU is visible")
    return torch.device(device)


def linalg_device(setting: str) -> torch.device | None:
    """Where the eigen and scores stages compute: "auto" is CUDA when a GPU is visible, else the
    CPU with scipy (None); "cpu" is scipy; "cuda" or "cuda:<i>" requires that GPU."""
    if setting not in ("auto", "cpu") and not setting.startswith("cuda"):
        raise NtpsInputError(f"device must be auto, cpu or cuda[:<index>], got {setting!r}")
    device = resolve_device(setting)
    return None if device.type == "cpu" else device

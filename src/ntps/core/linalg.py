"""The dense float64 linear algebra of the eigen and scores stages, on the CPU with scipy or on an
accelerator with torch.linalg.

Every function takes numpy arrays and returns numpy arrays; `device` None runs scipy/LAPACK on the
CPU, a torch.device runs torch.linalg there (CUDA when the forward pass ran on a GPU). The torch
path solves the symmetric-definite pencil as LAPACK's sygvd does, by a Cholesky factor of B and a
standard symmetric eigenproblem, and applies Householder reflectors without forming Q (LAPACK's
geqrf once, ormqr per product, as `Householder` does with scipy); tests/core/test_linalg.py runs it
on the CPU against scipy.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from ntps.core.errors import NtpsInputError


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float64), device=device)


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.cpu().numpy()


def matmul(a: np.ndarray, b: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """A B."""
    if device is None:
        return a @ b
    return _array(_tensor(a, device) @ _tensor(b, device))


def generalized_eigh(
    a: np.ndarray, b: np.ndarray, device: torch.device | None = None, divide_and_conquer: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Solutions of A w = lambda B w, A symmetric, B symmetric positive definite.

    divide_and_conquer: on the CPU, LAPACK's sygvd instead of scipy's default sygv (4x faster at
    d = 576). Both are exact to rounding where eigenvalues are distinct, but pick different bases
    of a repeated eigenvalue's eigenspace, so only pencils without one should switch.

    Returns:
        (eigenvalues (d,) ascending, eigenvectors (d, d) with W^T B W = I).
    Raises:
        np.linalg.LinAlgError: B is not numerically positive definite.
    """
    if device is None:
        return scipy.linalg.eigh(a, b, driver="gvd" if divide_and_conquer else "gv")
    a_t, b_t = _tensor(a, device), _tensor(b, device)
    lower, info = torch.linalg.cholesky_ex(b_t)
    if int(info) != 0:
        raise np.linalg.LinAlgError(f"B is not positive definite (leading minor {int(info)})")
    # C = L^-1 A L^-T, symmetric; its eigenvectors Y give W = L^-T Y.
    half = torch.linalg.solve_triangular(lower, a_t, upper=False)
    c = torch.linalg.solve_triangular(lower, half.T, upper=False)
    eigenvalues, y = torch.linalg.eigh((c + c.T) / 2)
    return _array(eigenvalues), _array(torch.linalg.solve_triangular(lower.T, y, upper=True))


class Householder:
    """The orthonormal factor Q of V = Q R (V (d, k), k <= d) kept as LAPACK's Householder
    reflectors (geqrf): V is factored once and Q^T applied to any number of matrices without
    forming Q. span(q_1..q_j) = span(v_1..v_j) for every j, which is what the all-k sweeps rely on.
    """

    def __init__(self, v: np.ndarray, device: torch.device | None = None):
        self._device = device
        self._columns = v.shape[1]
        if device is None:
            (self._reflectors, self._tau), _ = scipy.linalg.qr(v, mode="raw")
            (self._apply,) = scipy.linalg.get_lapack_funcs(("ormqr",), (self._reflectors,))
        else:
            self._reflectors, self._tau = torch.geqrf(_tensor(v, device))

    def transpose_times(self, c: np.ndarray) -> np.ndarray:
        """Q^T C, (k, m) for C (d, m)."""
        if self._device is not None:
            product = torch.ormqr(self._reflectors, self._tau, _tensor(c, self._device), left=True, transpose=True)
            return _array(product[: self._columns])
        *_, work, _ = self._apply("L", "T", self._reflectors, self._tau, c, lwork=-1)
        product, _, info = self._apply("L", "T", self._reflectors, self._tau, c, lwork=int(work[0]))
        if info != 0:
            raise np.linalg.LinAlgError(f"LAPACK ormqr failed (info {info})")
        return product[: self._columns]


def cholesky_lower(n: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """L with N = L L^T, N symmetric positive definite; raises np.linalg.LinAlgError otherwise."""
    if device is None:
        return scipy.linalg.cholesky(n, lower=True)
    lower, info = torch.linalg.cholesky_ex(_tensor(n, device))
    if int(info) != 0:
        raise np.linalg.LinAlgError(f"the matrix is not positive definite (leading minor {int(info)})")
    return _array(lower)


def solve_lower(lower: np.ndarray, b: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """L^-1 B for lower-triangular L."""
    if device is None:
        return scipy.linalg.solve_triangular(lower, b, lower=True)
    return _array(torch.linalg.solve_triangular(_tensor(lower, device), _tensor(b, device), upper=False))


def solve_lower_transposed(lower: np.ndarray, b: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """L^-T B for lower-triangular L."""
    if device is None:
        return scipy.linalg.solve_triangular(lower, b, lower=True, trans="T")
    return _array(torch.linalg.solve_triangular(_tensor(lower.T, device), _tensor(b, device), upper=True))


def extreme_eigenvalues(n: np.ndarray, device: torch.device | None = None) -> tuple[float, float]:
    """(smallest, largest) eigenvalue of symmetric N."""
    if device is None:
        values = scipy.linalg.eigvalsh(n)
    else:
        values = _array(torch.linalg.eigvalsh(_tensor(n, device)))
    return float(values[0]), float(values[-1])


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

"""Perception (U) and autoregressive (V) subspaces of Theorem 1: generalized eigenvectors.

U solves meanXY meanXY^T u = lambda meanXX u (eq. 9) and V solves
cov1 cov1^T v = lambda cov0 v (eq. 8). Eigenvectors are B-orthonormal (U^T B U = I), as the proof
of Theorem 2 assumes, and ordered by descending eigenvalue.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ntps.core.errors import NtpsInputError
from ntps.core.linalg import (
    OrthonormalComplement,
    cholesky_lower,
    generalized_eigh,
    matmul,
    orthonormal_factor,
    solve_lower,
    solve_lower_transposed,
    symmetric_eigh,
)
from ntps.core.statistics import LayerStatistics


@dataclass
class EigenSubspace:
    """Solution of A w = lambda (B + shift I) w.

    Attributes:
        eigenvalues: (d,) descending.
        eigenvectors: (d, d), column i belongs to eigenvalues[i]; W^T (B + shift I) W = I.
        ridge_shift: the absolute shift added to B's diagonal (ridge * trace(B) / d).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    ridge_shift: float


def ridge_shift(b: np.ndarray, ridge: float) -> float:
    """ridge * trace(B) / d, the absolute shift added to B's diagonal; (d, d) -> float."""
    return float(ridge * (np.trace(b) / b.shape[0]))


def symmetric_part(a: np.ndarray) -> np.ndarray:
    """(A + A^T) / 2 of (d, d) A, in one new array (at d = 4,096 each temporary is 134 MB)."""
    symmetric = a + a.T
    symmetric *= 0.5
    return symmetric


def regularized(b: np.ndarray, ridge: float) -> np.ndarray:
    """(d, d) the symmetric part of B plus ridge_shift(B, ridge) on its diagonal."""
    shifted = symmetric_part(b)
    shifted.flat[:: b.shape[0] + 1] += ridge_shift(b, ridge)
    return shifted


def _check_covariance(b: np.ndarray, ridge: float) -> None:
    """Refuse a covariance B (d, d) or ridge that no eigen solution can come from."""
    if b.ndim != 2 or b.shape[0] != b.shape[1]:
        raise NtpsInputError(f"the covariance B must be square, got {b.shape}")
    if ridge < 0:
        raise NtpsInputError(f"ridge must be non-negative, got {ridge}")
    if not np.isfinite(b).all():
        raise NtpsInputError("statistics contain NaN or infinite values")
    if not np.trace(b) > 0:
        raise NtpsInputError("the covariance B is zero: every hidden state is zero")


def _singular_covariance(ridge: float) -> NtpsInputError:
    return NtpsInputError(f"the covariance B is numerically singular (ridge={ridge}); raise the ridge")


def generalized_eigenspace(a: np.ndarray, b: np.ndarray, ridge: float, device: torch.device | None = None) -> EigenSubspace:
    """Top-first generalized eigenvectors of the symmetric pencil (A, B).

    Args:
        a: (d, d) symmetric positive semi-definite.
        b: (d, d) symmetric positive semi-definite, possibly singular.
        ridge: relative regularization; B + ridge * trace(B)/d * I is used, which keeps the
            problem solvable when B is singular (fewer texts than dimensions) and is invariant
            to a rescaling or rotation of the hidden states.
        device: None solves with scipy on the CPU, a torch.device with torch.linalg there.
    """
    _check_covariance(b, ridge)
    if a.shape != b.shape:
        raise NtpsInputError(f"A and B must be square of the same shape, got {a.shape} and {b.shape}")
    if not np.isfinite(a).all():
        raise NtpsInputError("statistics contain NaN or infinite values")
    try:
        eigenvalues, eigenvectors = generalized_eigh(symmetric_part(a), regularized(b, ridge), device)
    except np.linalg.LinAlgError as error:
        raise _singular_covariance(ridge) from error
    return EigenSubspace(
        eigenvalues=eigenvalues[::-1].copy(),
        eigenvectors=eigenvectors[:, ::-1].copy(),
        ridge_shift=ridge_shift(b, ridge),
    )


def perception_subspace(
    mean_xx: np.ndarray, mean_xy: np.ndarray, ridge: float, device: torch.device | None = None
) -> EigenSubspace:
    """U of eq. (9), the pencil (M M^T, N), from meanXX N (d, d) and meanXY M (d, c), in closed form.

    With N + shift I = L L^T (shift: generalized_eigenspace's ridge; N stands for N + shift I
    below), the pencil is the standard problem of Z Z^T, Z = L^-1 M (d, c): its eigenvectors of
    nonzero eigenvalue are L^-T W_r, W_r the left singular vectors of Z of nonzero singular value,
    the eigenvalues their squares; r = rank(M) (signal_rank).

    The other d - r eigenvectors span the eigenspace of eigenvalue 0, null(M^T), and every
    N-orthonormal basis of it solves eq. (9); Algorithm 1's "top k" does not say which. A general
    eigensolver returns whichever its iterations land on, which a last-bit change of N moves and
    which no rotation of the hidden states carries along. This one is canonical: the principal axes
    of N within null(M^T), by descending variance of the mean states (P A Sigma^-1/2 for P an
    orthonormal basis of null(M^T) and P^T N P = A Sigma A^T), N-orthonormal and orthogonal. P stays
    r Householder reflectors (linalg.OrthonormalComplement): P^T N P and P A then cost O(d^2 r)
    operations, where a formed P costs 6 d^3 (benchmarks/ntps_benchmark.py --measure eigen). It
    turns with the hidden states, so `paper` is invariant to their rotation at every k as V, U_r
    and the other scores are, and it is unique wherever N's variances within null(M^T) are
    distinct (with fewer texts than dimensions the ridge-only directions tie, as V's do).
    """
    _check_covariance(mean_xx, ridge)
    if mean_xy.ndim != 2 or mean_xy.shape[0] != mean_xx.shape[0]:
        raise NtpsInputError(f"meanXY must be (d, c) with d = {mean_xx.shape[0]}, got {mean_xy.shape}")
    if not np.isfinite(mean_xy).all():
        raise NtpsInputError("statistics contain NaN or infinite values")
    regularized_xx = regularized(mean_xx, ridge)
    try:
        lower = cholesky_lower(regularized_xx, device)
    except np.linalg.LinAlgError as error:
        raise _singular_covariance(ridge) from error
    rank = signal_rank(mean_xy)
    whitened_left, singular_values, _ = np.linalg.svd(solve_lower(lower, mean_xy, device), full_matrices=False)
    label_free = OrthonormalComplement(np.linalg.svd(mean_xy, full_matrices=False)[0][:, :rank])
    variances, axes = symmetric_eigh(label_free.congruence(regularized_xx), device)
    if len(variances) and not variances[0] > 0:
        raise _singular_covariance(ridge)
    eigenvalues = np.zeros(mean_xx.shape[0])
    eigenvalues[:rank] = singular_values[:rank] ** 2
    return EigenSubspace(
        eigenvalues=eigenvalues,
        eigenvectors=np.concatenate(
            [
                solve_lower_transposed(lower, whitened_left[:, :rank], device),
                label_free.times(axes[:, ::-1] / np.sqrt(variances[::-1])),
            ],
            axis=1,
        ),
        ridge_shift=ridge_shift(mean_xx, ridge),
    )


def autoregressive_subspace(
    cov0: np.ndarray, cov1: np.ndarray, ridge: float, device: torch.device | None = None
) -> EigenSubspace:
    """V of eq. (8) from cov0 (d, d) and cov1 (d, d). cov1 cov1^T has full rank once the texts hold
    more next-token pairs than dimensions (the default and the paper's runs), so V is unique up to
    signs."""
    return generalized_eigenspace(matmul(cov1, cov1.T, device), cov0, ridge, device)


def signal_rank(mean_xy: np.ndarray) -> int:
    """r = rank(meanXY meanXY^T) = rank(meanXY), (d, c) -> int <= min(d, c).

    Exactly r generalized eigenvalues of the perception problem are nonzero; the remaining
    d - r eigenvectors span an eigenspace of eigenvalue 0 (perception_subspace's canonical basis).
    """
    return int(np.linalg.matrix_rank(mean_xy))


@dataclass
class LayerSubspaces:
    """U and V for every layer.

    Attributes:
        perception_vectors: (L, d, d) U per layer, columns by descending eigenvalue.
        perception_values: (L, d).
        autoregressive_vectors: (L, d, d) V per layer, or, as loaded from storage (from_arrays),
            an orthonormal basis with the same nested spans: its first k columns span V_k for
            every k, which is all the scores use.
        autoregressive_values: (L, d).
        signal_ranks: (L,) r per layer.

    As solved (layer_subspaces) the vectors are float64; as loaded (from_arrays) they are the
    stored float32 arrays, possibly memory-mapped, and `vectors` reads one layer in float64.
    """

    perception_vectors: np.ndarray
    perception_values: np.ndarray
    autoregressive_vectors: np.ndarray
    autoregressive_values: np.ndarray
    signal_ranks: np.ndarray

    @property
    def n_layers(self) -> int:
        return len(self.signal_ranks)

    def vectors(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """(U, V) of one layer, (d, d) each, in float64."""
        return (
            np.asarray(self.perception_vectors[layer], dtype=np.float64),
            np.asarray(self.autoregressive_vectors[layer], dtype=np.float64),
        )

    def stored_layer(self, layer: int, device: torch.device | None = None) -> dict[str, np.ndarray]:
        """One layer of the stored form (to_arrays), without the layer axis; V's orthonormal factor
        is computed on `device` (None: the CPU)."""
        u, v = self.vectors(layer)
        return {
            "perception_vectors": u.astype(np.float32),
            "perception_values": self.perception_values[layer],
            "autoregressive_basis": orthonormal_factor(v, device).astype(np.float32),
            "autoregressive_values": self.autoregressive_values[layer],
            "signal_ranks": self.signal_ranks[layer],
        }

    def to_arrays(self, device: torch.device | None = None) -> dict[str, np.ndarray]:
        """The stored form, half the bytes of the float64 subspaces: U in float32, and instead of V
        the float32 orthonormal factor Q of V = Q R ("autoregressive_basis"), whose first k columns
        span V_k; V's columns are far from orthogonal, so V itself would lose its spans to float32
        rounding, Q does not. Eigenvalues and ranks stay exact."""
        layers = [self.stored_layer(layer, device) for layer in range(self.n_layers)]
        return {name: np.stack([stored[name] for stored in layers]) for name in layers[0]}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> LayerSubspaces:
        """The stored form, as stored (archives from before it, with V itself, load too)."""
        autoregressive = (
            arrays["autoregressive_basis"] if "autoregressive_basis" in arrays else arrays["autoregressive_vectors"]
        )
        return cls(
            perception_vectors=arrays["perception_vectors"],
            perception_values=np.asarray(arrays["perception_values"], dtype=np.float64),
            autoregressive_vectors=autoregressive,
            autoregressive_values=np.asarray(arrays["autoregressive_values"], dtype=np.float64),
            signal_ranks=np.asarray(arrays["signal_ranks"]),
        )

    @classmethod
    def stack(cls, layers: Sequence[LayerSubspaces]) -> LayerSubspaces:
        """The layers of several LayerSubspaces, in order, as one."""
        return cls(
            **{
                field.name: np.concatenate([getattr(part, field.name) for part in layers])
                for field in dataclasses.fields(cls)
            }
        )


def solve_layer(statistics: LayerStatistics, layer: int, ridge: float, device: torch.device | None = None) -> LayerSubspaces:
    """Both eigenproblems of Theorem 1 on one layer's averaged statistics, as LayerSubspaces of
    that one layer (device: see generalized_eigenspace)."""
    moments = statistics.averaged(layer)
    perception = perception_subspace(moments["mean_xx"], moments["mean_xy"], ridge, device)
    autoregressive = autoregressive_subspace(moments["cov0"], moments["cov1"], ridge, device)
    return LayerSubspaces(
        perception_vectors=perception.eigenvectors[None],
        perception_values=perception.eigenvalues[None],
        autoregressive_vectors=autoregressive.eigenvectors[None],
        autoregressive_values=autoregressive.eigenvalues[None],
        signal_ranks=np.asarray([signal_rank(moments["mean_xy"])], dtype=np.int64),
    )


def stored_layer_subspaces(
    statistics: LayerStatistics, layer: int, ridge: float, device: torch.device | None = None
) -> dict[str, np.ndarray]:
    """The stored form (LayerSubspaces.to_arrays) of one layer's solution, without the layer axis:
    what the eigen stage streams to its archive, one layer at a time."""
    return solve_layer(statistics, layer, ridge, device).stored_layer(0, device)


def layer_subspaces(statistics: LayerStatistics, ridge: float, device: torch.device | None = None) -> LayerSubspaces:
    """Solve both eigenproblems of Theorem 1 on every layer (device: see generalized_eigenspace)."""
    return LayerSubspaces.stack(
        [
            solve_layer(statistics, layer, ridge, device)
            for layer in tqdm(range(statistics.n_layers), desc="eigen subspaces", unit="layer")
        ]
    )

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
from ntps.core.linalg import generalized_eigh, matmul
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


def generalized_eigenspace(
    a: np.ndarray, b: np.ndarray, ridge: float, device: torch.device | None = None, divide_and_conquer: bool = False
) -> EigenSubspace:
    """Top-first generalized eigenvectors of the symmetric pencil (A, B).

    Args:
        a: (d, d) symmetric positive semi-definite.
        b: (d, d) symmetric positive semi-definite, possibly singular.
        ridge: relative regularization; B + ridge * trace(B)/d * I is used, which keeps the
            problem solvable when B is singular (fewer texts than dimensions) and is invariant
            to a rescaling or rotation of the hidden states.
        device: None solves with scipy on the CPU, a torch.device with torch.linalg there.
        divide_and_conquer: see core.linalg.generalized_eigh.
    """
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise NtpsInputError(f"A and B must be square of the same shape, got {a.shape} and {b.shape}")
    if ridge < 0:
        raise NtpsInputError(f"ridge must be non-negative, got {ridge}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise NtpsInputError("statistics contain NaN or infinite values")
    if not np.trace(b) > 0:
        raise NtpsInputError("the covariance B is zero: every hidden state is zero")
    a_sym = symmetric_part(a)
    b_reg = regularized(b, ridge)
    try:
        eigenvalues, eigenvectors = generalized_eigh(a_sym, b_reg, device, divide_and_conquer)
    except np.linalg.LinAlgError as error:
        raise NtpsInputError(f"the covariance B is numerically singular (ridge={ridge}); raise the ridge") from error
    return EigenSubspace(
        eigenvalues=eigenvalues[::-1].copy(),
        eigenvectors=eigenvectors[:, ::-1].copy(),
        ridge_shift=ridge_shift(b, ridge),
    )


def perception_subspace(
    mean_xx: np.ndarray, mean_xy: np.ndarray, ridge: float, device: torch.device | None = None
) -> EigenSubspace:
    """U of eq. (9) from meanXX (d, d) and meanXY (d, c)."""
    return generalized_eigenspace(mean_xy @ mean_xy.T, mean_xx, ridge, device)


def autoregressive_subspace(
    cov0: np.ndarray, cov1: np.ndarray, ridge: float, device: torch.device | None = None
) -> EigenSubspace:
    """V of eq. (8) from cov0 (d, d) and cov1 (d, d). cov1 cov1^T has full rank once the texts hold
    more next-token pairs than dimensions (the default and the paper's runs), so V is unique up to
    signs and the faster divide-and-conquer solver gives the same V; U's pencil has d - r equal (zero)
    eigenvalues and keeps the solver whose basis the README's measurements used."""
    return generalized_eigenspace(matmul(cov1, cov1.T, device), cov0, ridge, device, divide_and_conquer=True)


def signal_rank(mean_xy: np.ndarray) -> int:
    """r = rank(meanXY meanXY^T) = rank(meanXY), (d, c) -> int <= min(d, c).

    Exactly r generalized eigenvalues of the perception problem are nonzero; the remaining
    d - r eigenvectors span an eigenspace of eigenvalue 0 whose basis is arbitrary.
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

    def stored_layer(self, layer: int) -> dict[str, np.ndarray]:
        """One layer of the stored form (to_arrays), without the layer axis."""
        u, v = self.vectors(layer)
        return {
            "perception_vectors": u.astype(np.float32),
            "perception_values": self.perception_values[layer],
            "autoregressive_basis": np.linalg.qr(v)[0].astype(np.float32),
            "autoregressive_values": self.autoregressive_values[layer],
            "signal_ranks": self.signal_ranks[layer],
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The stored form, half the bytes of the float64 subspaces: U in float32, and instead of V
        the float32 orthonormal factor Q of V = Q R ("autoregressive_basis"), whose first k columns
        span V_k; V's columns are far from orthogonal, so V itself would lose its spans to float32
        rounding, Q does not. Eigenvalues and ranks stay exact."""
        layers = [self.stored_layer(layer) for layer in range(self.n_layers)]
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
    return solve_layer(statistics, layer, ridge, device).stored_layer(0)


def layer_subspaces(statistics: LayerStatistics, ridge: float, device: torch.device | None = None) -> LayerSubspaces:
    """Solve both eigenproblems of Theorem 1 on every layer (device: see generalized_eigenspace)."""
    return LayerSubspaces.stack(
        [
            solve_layer(statistics, layer, ridge, device)
            for layer in tqdm(range(statistics.n_layers), desc="eigen subspaces", unit="layer")
        ]
    )

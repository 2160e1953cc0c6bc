"""The excess regression loss that Theorem 2 only bounds, computed exactly for every k.

L*(V_k) is the smallest E||y - W^T V_k^T m||^2 over W: the loss of the best linear regression of
the one-hot label y on the mean-pooled state m seen through span(V_k) (eq. 29, no intercept). The
best linear loss over all directions is tr E[y y^T] - sum(Lambda), Lambda the perception
eigenvalues, so the label variance V_k loses is

    Delta L(k) = L*(V_k) - min_W E||y - W^T m||^2 = sum(Lambda) - T(k),
    T(k) = tr(V_k^T M M^T V_k (V_k^T N V_k)^(-1)) = sum_{j<=k} ||M^T q_j||^2,

with N = E[m m^T], M = E[m y^T] and q_j = Q R^(-1) e_j the N-orthonormal basis that the Cholesky
factor R of Q^T N Q gives, Q the orthonormal basis of V's nested spans (core.linalg.NestedBasis):
span(q_1..q_k) = span(V_k) for every k, R being triangular. Then M^T q_j = (R^(-T) Q^T M)_j, so all
of T is one triangular solve on Q^T M, and sum(Lambda) = ||L^(-1) M||_F^2 with N = L L^T.

R comes from the Gram matrix W^T W of W = L^T Q. Forming it squares W's condition number, but that
is cond(N), which the Cholesky factor L of N has already paid: both factors are exact for N
perturbed by rounding of the order of eps ||N||. On meanXX over fourteen decades with the eigen
stage's ridge, T(k) is within 1.3e-10 of sum(Lambda) of its exact value, against 2.6e-11 for a
Householder QR of W, which forms no Gram matrix but costs twice as much at d = 4,096
(tests/core/test_excess_loss.py), far below what storing V in float32 moves it. With a V far from
orthogonal, V^T N V would also square cond(V); Q's orthonormality keeps that out.

N carries the eigen stage's ridge (N + ridge * tr(N)/d * I): with ridge > 0 every loss is that of
the ridge objective E||y - A^T m||^2 + shift ||A||_F^2, A restricted to span(V_k), and Lambda are
exactly the perception eigenvalues the eigen stage solves for.

Theorem 2 (eq. 41) bounds the paper's excess loss, L*(V_k) - L*(U_k), by
C_min (1 - NTPS) <= . <= C_max (1 - NTPS), C_min = lambda_min(N) Lambda_k ||U_k||_F^2 and
C_max = lambda_max(N) Lambda_1 ||U_k||_F^2; `theorem2_bounds` evaluates both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ntps.core.errors import NtpsInputError
from ntps.core.linalg import (
    NestedBasis,
    cholesky_lower,
    extreme_eigenvalues,
    gram_cholesky_upper,
    lower_transpose_times,
    solve_lower,
    solve_upper_transposed,
)
from ntps.core.subspaces import ridge_shift


@dataclass
class ExcessLoss:
    """Explained label variance through span(V_k) for k = 1..d.

    Attributes:
        explained: (d,) T(k), the label variance the best regression through V_k explains.
        explainable: sum(Lambda), what the best regression on all of m explains.
    """

    explained: np.ndarray
    explainable: float

    @property
    def excess(self) -> np.ndarray:
        """(d,) Delta L(k) = sum(Lambda) - T(k)."""
        return self.explainable - self.explained

    @property
    def kept_share(self) -> np.ndarray:
        """(d,) 1 - Delta L(k) / sum(Lambda): the share of the linearly explainable label variance
        that span(V_k) keeps, in [0, 1]; NaN when the labels are not linearly explainable at all."""
        if not self.explainable > 0:
            return np.full_like(self.explained, np.nan)
        return self.explained / self.explainable


def excess_loss_all_k(mean_xy: np.ndarray, whitening: Whitening) -> ExcessLoss:
    """Delta L(k) of the autoregressive directions V_k, for every k.

    Args:
        mean_xy: (d, c) M = E[m y^T].
        whitening: N and V of the layer, factored (Whitening.of).
    """
    labels = whitening.labels(mean_xy)
    explained = np.cumsum((labels.in_q**2).sum(axis=1))
    return ExcessLoss(explained=explained, explainable=float((labels.whitened**2).sum()))


@dataclass
class WhitenedLabels:
    """Labels seen through N's Cholesky factor L (N = L L^T, ridge included).

    Attributes:
        whitened: (d, c) Z = L^-1 M.
        in_q: (k, c) row j: q_j^T M, q_j the N-orthonormal basis of V's nested spans.
    """

    whitened: np.ndarray
    in_q: np.ndarray


@dataclass
class Whitening:
    """What the excess loss of any labelling needs of a layer's N and V, factored once and
    shared by the true labels and every shuffle of the null.

    Attributes:
        lower: (d, d) L, N = L L^T with the eigen stage's ridge.
        basis: the orthonormal basis Q of V's nested spans (shared with the paper and signal scores).
        spans_upper: (k, k) R, upper triangular, R^T R = Q^T N Q: Q R^-1's first j columns are the
            N-orthonormal basis of span(V_j).
        device: where products with them run (None: scipy on the CPU).
    """

    lower: np.ndarray
    basis: NestedBasis
    spans_upper: np.ndarray
    device: torch.device | None

    @classmethod
    def of(cls, mean_xx: np.ndarray, basis: NestedBasis, ridge: float) -> Whitening:
        """From N = meanXX (d, d) before the ridge, symmetric as LayerStatistics stores it (its lower
        triangle is read), and the orthonormal basis of V's nested spans, on the basis's device."""
        d = mean_xx.shape[0]
        if mean_xx.shape != (d, d) or basis.q.shape[0] != d:
            raise NtpsInputError(f"shapes do not match: N {mean_xx.shape}, V {basis.q.shape}")
        try:
            lower = cholesky_lower(mean_xx, basis.device, shift=ridge_shift(mean_xx, ridge))
            spans_upper = gram_cholesky_upper(lower_transpose_times(lower, basis.q, basis.device), basis.device)
        except np.linalg.LinAlgError as error:
            raise NtpsInputError(f"meanXX is numerically singular (ridge={ridge}); raise the ridge") from error
        return cls(lower=lower, basis=basis, spans_upper=spans_upper, device=basis.device)

    def labels(self, mean_xy: np.ndarray) -> WhitenedLabels:
        """Z = L^-1 M and the rows q_j^T M for any number of label columns (M (d, c): one
        labelling's, or several side by side, as the shuffled-label null has them)."""
        if mean_xy.shape[0] != self.lower.shape[0]:
            raise NtpsInputError(f"M {mean_xy.shape} does not match N ({self.lower.shape[0]} dimensions)")
        in_q = solve_upper_transposed(self.spans_upper, self.basis.transpose_times(mean_xy), self.device)
        return WhitenedLabels(whitened=solve_lower(self.lower, mean_xy, self.device), in_q=in_q)


@dataclass
class Theorem2Bounds:
    """Both sides of eq. (41) for k = 1..d, against the excess loss they bound.

    Attributes:
        excess_loss_vs_u: (d,) L*(V_k) - L*(U_k), the paper's Delta L (U_k the top k perception
            directions).
        lower: (d,) C_min (1 - NTPS(U_k, V_k)).
        upper: (d,) C_max (1 - NTPS(U_k, V_k)).
        holds: (d,) lower <= excess_loss_vs_u <= upper, up to rounding.
        n_eigenvalue_min: lambda_min(N), ridge included.
        n_eigenvalue_max: lambda_max(N), ridge included.
    """

    excess_loss_vs_u: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    holds: np.ndarray
    n_eigenvalue_min: float
    n_eigenvalue_max: float


def theorem2_bounds(
    loss: ExcessLoss,
    perception_values: np.ndarray,
    perception_vectors: np.ndarray,
    ntps_paper: np.ndarray,
    whitening: Whitening,
) -> Theorem2Bounds:
    """Evaluate Theorem 2 on one layer.

    Args:
        loss: excess_loss_all_k of the layer.
        perception_values: (d,) Lambda, descending.
        perception_vectors: (d, d) U, N-orthonormal, descending.
        ntps_paper: (d,) NTPS(U_k, V_k).
        whitening: the layer's factored N (ridge included) and V, as `loss` used them.
    """
    # Lambda >= 0; the closed form gives exact zeros beyond r, an archive from a general solver +-1e-17.
    eigenvalues = np.clip(perception_values, 0.0, None)
    n_eigenvalue_min, n_eigenvalue_max = extreme_eigenvalues(whitening.lower, whitening.device)
    u_norms = np.cumsum(np.einsum("ij,ij->j", perception_vectors, perception_vectors))
    excess_loss_vs_u = np.cumsum(eigenvalues) - loss.explained
    # 1 - NTPS lies in [0, 1]; at k = d rounding can leave -1e-16, which C_max (up to ~1e10) would
    # turn into a negative upper bound.
    misalignment = np.clip(1 - ntps_paper, 0.0, 1.0)
    lower = n_eigenvalue_min * eigenvalues * u_norms * misalignment
    upper = n_eigenvalue_max * eigenvalues[0] * u_norms * misalignment
    rounding = 1e-9 * max(loss.explainable, np.finfo(float).tiny)
    holds = (lower <= excess_loss_vs_u + rounding) & (excess_loss_vs_u <= upper + rounding)
    return Theorem2Bounds(
        excess_loss_vs_u=excess_loss_vs_u,
        lower=lower,
        upper=upper,
        holds=holds,
        n_eigenvalue_min=n_eigenvalue_min,
        n_eigenvalue_max=n_eigenvalue_max,
    )

"""NTPS(U_k, V_k) = ||P_{V_k} U_k||_F^2 / ||U_k||_F^2 for every k at once.

With V = Q R (QR, V of full column rank) the span of V's first k columns is the span of Q's
first k columns, so P_{V_k} = Q_k Q_k^T and ||P_{V_k} u_j||^2 = sum_{i<=k} (q_i . u_j)^2. With
G = (Q^T U)**2 elementwise, the numerator for every k is a two-dimensional prefix sum of G,
read on its diagonal: one orthonormal basis of V (core.linalg.NestedBasis) and one product per
layer, shared by every variant, instead of a pseudo-inverse per k. V is square, so Q spans every
direction and ||u_j||^2 = sum_i G[i, j]: the denominators are G's column sums, which keeps every
score in [0, 1] and exactly 1 at k = d also where Q is orthonormal only to the float32 rounding of
the stored basis (NestedBasis).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ntps.core.errors import NtpsInputError
from ntps.core.excess_loss import Whitening, excess_loss_all_k, theorem2_bounds
from ntps.core.label_null import LabelNull, null_columns, shuffled_label_scores
from ntps.core.linalg import NestedBasis, nested_prefix_sums
from ntps.core.released_code import released_alignment_scores
from ntps.core.statistics import LayerStatistics
from ntps.core.subspaces import LayerSubspaces


def _squared_alignments(u: np.ndarray, v: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """G[i, j] = (q_i . u_j)^2 with Q the orthonormal basis of V's nested spans; (d, m)."""
    if u.ndim != 2 or v.ndim != 2 or u.shape[0] != v.shape[0] or v.shape[0] != v.shape[1]:
        raise NtpsInputError(f"U must be (d, .) and V (d, d), got {u.shape} and {v.shape}")
    return _squared(NestedBasis(v, device).transpose_times(u))


def _squared(a: np.ndarray) -> np.ndarray:
    """a**2 elementwise, in place: at d = 4,096 each d x d temporary is 134 MB."""
    return np.square(a, out=a)


def _paper_scores(g: np.ndarray) -> np.ndarray:
    """NTPS(U_k, V_k) for k = 1..d from G (d, d) of all of U: the numerator is
    sum_{i, j <= k} G[i, j], which grows at step k by row k up to the diagonal and column k above
    it; the denominator ||U_k||_F^2 is sum_{i, j <= k} G[i, j] over every row i."""
    return nested_prefix_sums(g) / g.sum(axis=0).cumsum()


def _signal_scores(g_signal: np.ndarray) -> np.ndarray:
    """NTPS(U_r, V_k) for k = 1..d from G (d, r) of U_r's columns."""
    return g_signal.sum(axis=1).cumsum() / g_signal.sum()


def _check_rank(u: np.ndarray, rank: int) -> None:
    if not 1 <= rank <= u.shape[1]:
        raise NtpsInputError(f"signal rank must lie in 1..{u.shape[1]}, got {rank}")


def ntps_paper_all_k(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Algorithm 1's NTPS(U_k, V_k) for k = 1..d.

    Args:
        u: (d, d) perception eigenvectors, descending eigenvalue order.
        v: (d, d) autoregressive eigenvectors, descending eigenvalue order.
    Returns:
        (d,) array; entry k-1 is NTPS with the top k columns of both.
    """
    return _paper_scores(_squared_alignments(u, v))


def ntps_signal_all_k(u: np.ndarray, v: np.ndarray, rank: int) -> np.ndarray:
    """NTPS(U_r, V_k) for k = 1..d with U_r the r eigenvectors of nonzero eigenvalue.

    Args:
        u: (d, >= r) perception eigenvectors, descending eigenvalue order.
        v: (d, d) autoregressive eigenvectors.
        rank: r, the number of nonzero perception eigenvalues.
    Returns:
        (d,) array; entry k-1 is the share of U_r captured by span(V_k).
    """
    _check_rank(u, rank)
    return _signal_scores(_squared_alignments(u[:, :rank], v))


def ntps_paper_and_signal_all_k(
    u: np.ndarray, v: np.ndarray, rank: int, device: torch.device | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(ntps_paper_all_k, ntps_signal_all_k) from one factorization of V and one product: U_r's
    alignments are the first r columns of U's. device: None runs scipy, a torch.device torch."""
    _check_rank(u, rank)
    return _paper_and_signal(_squared_alignments(u, v, device), rank)


def _paper_and_signal(g: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    return _paper_scores(g), _signal_scores(g[:, :rank])


def check_k_fractions(fractions: list[float]) -> None:
    """Refuse fractions of d outside (0, 1], naming them."""
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise NtpsInputError(f"k fractions must lie in (0, 1], got {bad}")


def paper_fraction_ks(hidden_size: int, fractions: list[float]) -> np.ndarray:
    """The integer k for each fraction of the hidden size (the paper's 0.05..0.95 grid).

    Returns:
        (len(fractions),) int array, each round(f * d) clipped to 1..d.
    """
    if hidden_size < 1:
        raise NtpsInputError(f"hidden size must be positive, got {hidden_size}")
    check_k_fractions(fractions)
    return np.clip(np.rint(np.asarray(fractions) * hidden_size).astype(int), 1, hidden_size)


# paper and signal: NTPS of this project's float64 subspaces; released_code: the authors' released
# procedure (core.released_code); label_variance_kept: 1 - Delta L(k) / sum(Lambda) (core.excess_loss).
VARIANTS = ("paper", "signal", "released_code", "label_variance_kept")


NULL_COLUMNS = ["null_mean", "null_sd", "excess_over_null", "null_p_value", "n_shuffles"]


def scored_variants(ntps_table: pd.DataFrame) -> list[str]:
    """The score variants the table holds, in VARIANTS' order (released_code can be switched off)."""
    present = set(ntps_table["variant"].unique())
    return [variant for variant in VARIANTS if variant in present]


def _layer_tables(
    statistics: LayerStatistics,
    subspaces: LayerSubspaces,
    layer: int,
    layer_keys: dict[str, object],
    ridge: float,
    released_code: bool,
    device: torch.device | None,
    label_null: LabelNull | None,
) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """One layer's rows of score_tables' two tables. A function of its own, so that the layer's
    d x d arrays are freed when it returns: the stage holds one layer's at a time."""
    rank = int(subspaces.signal_ranks[layer])
    ks = layer_keys["k"]
    released_frames = []
    if released_code:  # first, so that its float32 copies of all four statistics are gone before the rest
        released = released_alignment_scores(**statistics.averaged(layer))
        released_frames.append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "k": released.u_columns,
                    "k_fraction": released.fractions,
                    "on_paper_grid": True,
                    "variant": "released_code",
                    "signal_rank": rank,
                    "v_columns": released.v_columns,
                    "ntps": released.scores,
                }
            )
        )
    mean_xx, mean_xy = statistics.averaged(layer, ("mean_xx", "mean_xy")).values()
    u, v = subspaces.vectors(layer)
    # One orthonormal basis of V's spans and one factorization of N serve every variant and shuffle.
    v_spans = NestedBasis(v, device)
    del v
    whitening = Whitening.of(mean_xx, v_spans, ridge)
    paper, signal = _paper_and_signal(_squared(v_spans.transpose_times(u)), rank)
    loss = excess_loss_all_k(mean_xy, whitening)
    bounds = theorem2_bounds(loss, subspaces.perception_values[layer], u, paper, whitening)
    null = None
    if label_null is not None and layer in label_null.pooled_states:
        null = shuffled_label_scores(
            label_null.pooled_states[layer],
            label_null.label_ids,
            label_null.n_classes,
            label_null.orderings,
            whitening,
            v_spans,
            device,
        )
    score_frames = []
    for variant, scores in (("paper", paper), ("signal", signal), ("label_variance_kept", loss.kept_share)):
        frame = pd.DataFrame({**layer_keys, "variant": variant, "signal_rank": rank, "v_columns": ks, "ntps": scores})
        if null is not None:
            frame = frame.assign(**null_columns(scores, null.variant(variant)), n_shuffles=len(label_null.orderings))
        score_frames.append(frame)
    loss_frame = pd.DataFrame(
        {
            **layer_keys,
            "signal_rank": rank,
            "excess_loss": loss.excess,
            "explainable_label_variance": loss.explainable,
            "label_variance_kept": loss.kept_share,
            "excess_loss_vs_u": bounds.excess_loss_vs_u,
            "ntps_paper": paper,
            "theorem2_lower": bounds.lower,
            "theorem2_upper": bounds.upper,
            "theorem2_holds": bounds.holds,
            "n_eigenvalue_min": bounds.n_eigenvalue_min,
            "n_eigenvalue_max": bounds.n_eigenvalue_max,
        }
    )
    return score_frames + released_frames, loss_frame


def score_tables(
    statistics: LayerStatistics,
    subspaces: LayerSubspaces,
    ridge: float,
    paper_fractions: list[float],
    released_code: bool = True,
    device: torch.device | None = None,
    label_null: LabelNull | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every score variant for every layer and k, and the excess loss Theorem 2 bounds.

    Args:
        statistics: the summed statistics the subspaces were solved from.
        subspaces: U and V per layer, solved with `ridge`.
        ridge: the eigen stage's relative ridge (the excess loss uses the same N).
        paper_fractions: fractions of d flagged as the paper's grid (0.05..0.95).
        released_code: also score the released code's procedure, whose 19 float32 pseudo-inverses
            per layer cost far more than every other variant together.
        device: None computes the float64 variants with scipy on the CPU, a torch.device with
            torch.linalg there (the released procedure always runs as released: scipy, float32).
        label_null: the pooled states and shuffles of the shuffled-label null (core.label_null);
            None leaves its columns out.
    Returns:
        (ntps_table, excess_loss_table).
        ntps_table: one row per layer x variant x k with layer, k, k_fraction, on_paper_grid,
            variant, signal_rank, v_columns, ntps (the variant's score). paper, signal and
            label_variance_kept have k = 1..d and use V_k (v_columns = k); released_code has the
            released fractions f (k_fraction = f, on the paper's grid), k = int(f rank_U) columns
            of U and v_columns = int(f rank_V) of V. With label_null, also null_mean, null_sd,
            excess_over_null, null_p_value (null_columns) and n_shuffles, NaN where a layer has no
            pooled states or a variant no null (released_code; paper beyond the signal rank).
        excess_loss_table: one row per layer x k with layer, k, k_fraction, on_paper_grid,
            signal_rank, excess_loss (Delta L(k)), explainable_label_variance (sum(Lambda)),
            label_variance_kept, excess_loss_vs_u (L*(V_k) - L*(U_k)), ntps_paper,
            theorem2_lower, theorem2_upper, theorem2_holds, n_eigenvalue_min, n_eigenvalue_max.
    """
    d = statistics.hidden_size
    ks = np.arange(1, d + 1)
    keys = {"k": ks, "k_fraction": ks / d, "on_paper_grid": np.isin(ks, paper_fraction_ks(d, paper_fractions))}
    score_frames, loss_frames = [], []
    for layer in tqdm(range(statistics.n_layers), desc="NTPS scores", unit="layer"):
        layer_scores, layer_losses = _layer_tables(
            statistics, subspaces, layer, {"layer": layer, **keys}, ridge, released_code, device, label_null
        )
        score_frames += layer_scores
        loss_frames.append(layer_losses)
    scores = pd.concat(score_frames, ignore_index=True)
    if label_null is not None:
        # Every row gets the columns, NaN where there is no null (a layer not pooled, released_code).
        scores = scores.reindex(columns=[*scores.columns.drop(NULL_COLUMNS, errors="ignore"), *NULL_COLUMNS])
    return scores, pd.concat(loss_frames, ignore_index=True)

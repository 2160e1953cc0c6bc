"""ntps.core.ntps: the all-k NTPS sweeps against the literal Algorithm 1, and the properties the paper proves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from ntps.core.errors import NtpsInputError
from ntps.core.ntps import (
    ntps_paper_all_k,
    ntps_paper_and_signal_all_k,
    ntps_signal_all_k,
    paper_fraction_ks,
    score_tables,
)
from ntps.core.released_code import RELEASED_FRACTIONS
from ntps.core.statistics import StatisticsAccumulator
from ntps.core.subspaces import (
    layer_subspaces,
)
from tests.core.paper_reference import algorithm1_ntps
from tests.core.synthetic import CLASSES, HIDDEN, N_LAYERS, accumulate, random_texts, rotated


def test_all_k_sweep_equals_pseudo_inverse_per_k():
    rng = np.random.default_rng(4)
    texts, labels = random_texts(rng, n_texts=40, max_length=8)
    statistics = accumulate(texts, labels)
    subspaces = layer_subspaces(statistics, ridge=1e-6)
    table, _ = score_tables(statistics, subspaces, 1e-6, [0.5])
    assert len(table[table.variant.isin(["paper", "signal"])]) == 2 * N_LAYERS * HIDDEN
    for layer in range(N_LAYERS):
        u, v = subspaces.perception_vectors[layer], subspaces.autoregressive_vectors[layer]
        rank = subspaces.signal_ranks[layer]
        assert rank == CLASSES
        rows = table[table.layer == layer]
        for k in range(1, HIDDEN + 1):
            paper = rows[(rows.variant == "paper") & (rows.k == k)].ntps.item()
            signal = rows[(rows.variant == "signal") & (rows.k == k)].ntps.item()
            assert paper == pytest.approx(algorithm1_ntps(u, v, k), abs=1e-9)
            assert signal == pytest.approx(algorithm1_ntps(u, v, k, u_columns=rank), abs=1e-9)
            assert paper == pytest.approx(algorithm1_ntps(u, v, k), abs=1e-9)


def test_shared_sweep_equals_explicit_q_prefix_sums_and_algorithm1():
    rng = np.random.default_rng(9)
    d, rank = 40, 5
    u, v = rng.normal(size=(d, d)) * np.exp(rng.normal(size=d)), rng.normal(size=(d, d)) * np.exp(rng.normal(size=d))
    q, _ = np.linalg.qr(v)  # the explicit orthonormal basis, as the sweep read before it shared one factorization
    g = (q.T @ u) ** 2
    explicit_paper = np.diagonal(g.cumsum(axis=0).cumsum(axis=1)) / (u**2).sum(axis=0).cumsum()
    explicit_signal = g[:, :rank].cumsum(axis=0).sum(axis=1) / (u[:, :rank] ** 2).sum()
    paper, signal = ntps_paper_and_signal_all_k(u, v, rank)
    np.testing.assert_allclose(paper, explicit_paper, rtol=0, atol=1e-12)
    np.testing.assert_allclose(signal, explicit_signal, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(paper, ntps_paper_all_k(u, v))
    np.testing.assert_allclose(signal, ntps_signal_all_k(u, v, rank), rtol=0, atol=1e-14)
    for k in (1, 7, 23, d):
        assert paper[k - 1] == pytest.approx(algorithm1_ntps(u, v, k), abs=1e-10)
        assert signal[k - 1] == pytest.approx(algorithm1_ntps(u, v, k, u_columns=rank), abs=1e-10)
    with pytest.raises(NtpsInputError, match="signal rank"):
        ntps_paper_and_signal_all_k(u, v, d + 1)


def test_ntps_lies_in_unit_interval_and_is_one_for_equal_spans():
    rng = np.random.default_rng(6)
    for _ in range(20):
        u, v = rng.normal(size=(9, 9)), rng.normal(size=(9, 9))
        for scores in (ntps_paper_all_k(u, v), ntps_signal_all_k(u, v, 3)):
            assert np.all(scores >= -1e-12) and np.all(scores <= 1 + 1e-12)
        # V = U R with R upper triangular: span(V_k) = span(U_k) for every k.
        same_spans = u @ np.triu(rng.normal(size=(9, 9)) + 5 * np.eye(9))
        np.testing.assert_allclose(ntps_paper_all_k(u, same_spans), 1.0, atol=1e-10)
        assert ntps_paper_all_k(u, v)[-1] == pytest.approx(1.0)
    orthogonal = np.eye(4)
    assert algorithm1_ntps(orthogonal[:, :2], orthogonal[:, 2:], 2) == pytest.approx(0.0)


def test_every_variant_is_invariant_to_rotating_hidden_states():
    # `paper` beyond the signal rank too: U's basis of eigenvalue 0 (perception_subspace) is the
    # principal axes of meanXX there, which turn with the states; a solver's arbitrary basis does not.
    rng = np.random.default_rng(7)
    texts, labels = random_texts(rng, n_texts=60, max_length=8)
    rotation = scipy.stats.ortho_group.rvs(HIDDEN, random_state=8)
    tables = []
    for states in (texts, rotated(texts, rotation)):
        statistics = accumulate(states, labels)
        tables.append(score_tables(statistics, layer_subspaces(statistics, ridge=1e-6), 1e-6, [0.5])[0])
    original, turned = tables
    exact = original.variant != "released_code"
    assert (original.variant[exact] == "paper").sum() == N_LAYERS * HIDDEN
    np.testing.assert_allclose(turned.ntps[exact], original.ntps[exact], atol=1e-8)


def test_bad_k_fractions_and_bad_labels_are_named():
    with pytest.raises(NtpsInputError, match="k fractions"):
        paper_fraction_ks(5, [0.0, 0.5])
    accumulator = StatisticsAccumulator(1, 2, 2)
    with pytest.raises(NtpsInputError, match=r"label ids must lie in \[0, 2\)"):
        accumulator.update([torch.zeros(1, 2, 2)], torch.ones(1, 2), torch.tensor([2]))
    with pytest.raises(NtpsInputError, match="no real tokens"):
        accumulator.update([torch.zeros(1, 2, 2)], torch.zeros(1, 2), torch.tensor([0]))


def test_paper_grid_covers_five_to_ninety_five_percent():
    fractions = [round(0.05 * i, 2) for i in range(1, 20)]
    ks = paper_fraction_ks(576, fractions)
    assert ks[0] == 29 and ks[-1] == 547 and len(set(ks)) == 19


def test_score_tables_carry_every_variant_and_the_loss_table():
    rng = np.random.default_rng(15)
    texts, labels = random_texts(rng, n_texts=40, max_length=8)
    statistics = accumulate(texts, labels)
    ntps_table, loss_table = score_tables(statistics, layer_subspaces(statistics, ridge=1e-6), 1e-6, [0.5])
    counts = ntps_table.groupby("variant").size()
    assert counts.to_dict() == {
        "paper": 3 * HIDDEN,
        "signal": 3 * HIDDEN,
        "label_variance_kept": 3 * HIDDEN,
        "released_code": 3 * len(RELEASED_FRACTIONS),
    }
    assert len(loss_table) == 3 * HIDDEN
    kept = ntps_table[ntps_table["variant"] == "label_variance_kept"]["ntps"].to_numpy()
    np.testing.assert_array_equal(kept, loss_table["label_variance_kept"].to_numpy())
    np.testing.assert_allclose(
        1 - loss_table["excess_loss"] / loss_table["explainable_label_variance"], loss_table["label_variance_kept"]
    )
    assert loss_table["theorem2_holds"].dtype == bool
    assert (ntps_table["signal_rank"] == CLASSES).all()
    without_released, _ = score_tables(statistics, layer_subspaces(statistics, ridge=1e-6), 1e-6, [0.5], released_code=False)
    assert set(without_released["variant"]) == {"paper", "signal", "label_variance_kept"}

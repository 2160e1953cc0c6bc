"""The fast NTPS core against the literal Algorithm 1, and the properties the paper proves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from ntps.core.errors import NtpsInputError
from ntps.core.ntps import (
    ntps_paper_all_k,
    ntps_paper_and_signal_all_k,
    ntps_score,
    ntps_signal_all_k,
    paper_grid_ks,
    score_tables,
)
from ntps.core.statistics import LayerStatistics, StatisticsAccumulator
from ntps.core.subspaces import (
    generalized_eigenspace,
    layer_subspaces,
    perception_subspace,
    signal_rank,
)
from tests.paper_reference import algorithm1_ntps, algorithm1_statistics

N_LAYERS, HIDDEN, CLASSES = 3, 7, 3


def random_texts(rng, n_texts, max_length, hidden=HIDDEN, n_layers=N_LAYERS, classes=CLASSES):
    """Per layer, per text, token states of a random length 1..max_length, and labels."""
    lengths = rng.integers(1, max_length + 1, size=n_texts)
    lengths[0] = 1  # a one-token text must reach meanXX/meanXY and not cov0/cov1
    texts = [[rng.normal(size=(length, hidden)) + rng.normal(size=hidden) for length in lengths] for _ in range(n_layers)]
    labels = rng.integers(0, classes, size=n_texts)
    labels[:classes] = np.arange(classes)
    return texts, labels


def padded_batches(texts, labels, batch_size, padding_side, rng):
    """Pad per-text states into (B, T, d) tensors with garbage at padded positions."""
    n_texts = len(labels)
    for start in range(0, n_texts, batch_size):
        index = range(start, min(start + batch_size, n_texts))
        width = max(texts[0][i].shape[0] for i in index)
        mask = torch.zeros(len(index), width, dtype=torch.long)
        layers = []
        for layer_texts in texts:
            states = torch.from_numpy(rng.normal(size=(len(index), width, HIDDEN)) * 1e3)
            for row, i in enumerate(index):
                length = layer_texts[i].shape[0]
                where = slice(width - length, width) if padding_side == "left" else slice(0, length)
                states[row, where] = torch.from_numpy(layer_texts[i])
                mask[row, where] = 1
            layers.append(states)
        yield layers, mask, torch.as_tensor(labels[list(index)])


def accumulate(texts, labels, batch_size=5, padding_side="right", seed=0):
    accumulator = StatisticsAccumulator(len(texts), texts[0][0].shape[1], CLASSES)
    for layers, mask, batch_labels in padded_batches(texts, labels, batch_size, padding_side, np.random.default_rng(seed)):
        accumulator.update(layers, mask, batch_labels)
    return accumulator.result()


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_streaming_statistics_equal_algorithm1(padding_side):
    rng = np.random.default_rng(1)
    texts, labels = random_texts(rng, n_texts=23, max_length=9)
    statistics = accumulate(texts, labels, padding_side=padding_side)
    assert statistics.n_texts == 23
    assert statistics.n_transitions == sum(t.shape[0] - 1 for t in texts[0])
    for layer in range(N_LAYERS):
        reference = algorithm1_statistics(texts[layer], list(labels), CLASSES)
        fast = statistics.averaged(layer)
        for name, expected in reference.items():
            np.testing.assert_allclose(fast[name], expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())


def test_one_token_text_contributes_only_to_mean_statistics():
    rng = np.random.default_rng(2)
    state = rng.normal(size=(1, 1, HIDDEN))
    accumulator = StatisticsAccumulator(1, HIDDEN, CLASSES)
    accumulator.update([torch.from_numpy(state)], torch.ones(1, 1), torch.tensor([2]))
    statistics = accumulator.result()
    assert statistics.n_transitions == 0
    assert not statistics.cov0.any() and not statistics.cov1.any()
    np.testing.assert_allclose(statistics.mean_xx[0], np.outer(state, state))
    np.testing.assert_allclose(statistics.mean_xy[0][:, 2], state.ravel())


def test_statistics_of_shards_add_up_to_the_whole():
    rng = np.random.default_rng(3)
    texts, labels = random_texts(rng, n_texts=20, max_length=6)
    whole = accumulate(texts, labels)
    first = accumulate([t[:8] for t in texts], labels[:8])
    second = accumulate([t[8:] for t in texts], labels[8:])
    summed = first + second
    for name in ("mean_xx", "mean_xy", "cov0", "cov1"):
        np.testing.assert_allclose(getattr(summed, name), getattr(whole, name), rtol=1e-12, atol=1e-10)
    assert (summed.n_texts, summed.n_transitions) == (whole.n_texts, whole.n_transitions)
    restored = LayerStatistics.from_arrays(whole.to_arrays())
    np.testing.assert_array_equal(restored.cov1, whole.cov1)


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
            assert paper == pytest.approx(ntps_score(u, v, k), abs=1e-9)


def test_subspaces_are_b_orthonormal_generalized_eigenvectors():
    rng = np.random.default_rng(5)
    root = rng.normal(size=(6, 6))
    a, b = root @ root.T, np.cov(rng.normal(size=(6, 30)))
    solution = generalized_eigenspace(a, b, ridge=0.0)
    w, lam = solution.eigenvectors, solution.eigenvalues
    assert np.all(np.diff(lam) <= 0)
    np.testing.assert_allclose(w.T @ b @ w, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(a @ w, b @ w * lam, atol=1e-8 * np.abs(a).max())


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
    assert ntps_score(orthogonal[:, :2], orthogonal[:, 2:], 2) == pytest.approx(0.0)


def rotated(texts, rotation):
    return [[x @ rotation.T for x in layer_texts] for layer_texts in texts]


def test_signal_variant_is_invariant_to_rotating_hidden_states():
    rng = np.random.default_rng(7)
    texts, labels = random_texts(rng, n_texts=60, max_length=8)
    rotation = scipy.stats.ortho_group.rvs(HIDDEN, random_state=8)
    tables = []
    for states in (texts, rotated(texts, rotation)):
        statistics = accumulate(states, labels)
        tables.append(score_tables(statistics, layer_subspaces(statistics, ridge=1e-6), 1e-6, [0.5])[0])
    original, turned = tables
    signal = original.variant == "signal"
    np.testing.assert_allclose(turned.ntps[signal], original.ntps[signal], atol=1e-8)
    paper_beyond_rank = (original.variant == "paper") & (original.k > CLASSES) & (original.k < HIDDEN)
    # The paper's U_k for k > r holds an arbitrary basis of eigenvalue 0: not invariant.
    assert np.abs(turned.ntps[paper_beyond_rank] - original.ntps[paper_beyond_rank]).max() > 1e-3


def labelled_features(rng, n=400, d=8, c=3):
    """(features (n, d) with class-dependent means, one-hot targets (n, c))."""
    targets = np.eye(c)[rng.integers(0, c, size=n)]
    return rng.normal(size=(n, d)) + 1.5 * targets @ rng.normal(size=(c, d)), targets


def test_theorem2_excess_ols_loss_is_bounded_by_ntps():
    rng = np.random.default_rng(9)
    features, targets = labelled_features(rng)
    n, d = features.shape
    n_moment, m_moment = features.T @ features / n, features.T @ targets / n
    perception = perception_subspace(n_moment, m_moment, ridge=0.0)
    k = signal_rank(m_moment)
    u, lam = perception.eigenvectors[:, :k], perception.eigenvalues[:k]

    def ols_loss(encoder):
        encoded = features @ encoder
        z, *_ = np.linalg.lstsq(encoded, targets, rcond=None)
        return float(((encoded @ z - targets) ** 2).sum(axis=1).mean())

    n_eigenvalues = np.linalg.eigvalsh(n_moment)
    c_min = n_eigenvalues.min() * lam.min() * (u**2).sum()
    c_max = n_eigenvalues.max() * lam.max() * (u**2).sum()
    checked = 0
    for trial in range(30):
        v = rng.normal(size=(d, k)) + (trial % 3) * u  # from unrelated to nearly aligned
        excess = ols_loss(v) - ols_loss(u)
        misalignment = 1 - ntps_score(u, v, k)
        assert c_min * misalignment - 1e-12 <= excess <= c_max * misalignment + 1e-12
        checked += misalignment > 1e-3
    assert checked > 20


def test_bad_k_and_bad_labels_are_named():
    u = np.eye(5)
    for bad_k in (0, 6, 2.5, -1):
        with pytest.raises(NtpsInputError, match="k must be an integer in 1..5"):
            ntps_score(u, u, bad_k)
    with pytest.raises(NtpsInputError, match="k fractions"):
        paper_grid_ks(5, [0.0, 0.5])
    accumulator = StatisticsAccumulator(1, 2, 2)
    with pytest.raises(NtpsInputError, match=r"label ids must lie in \[0, 2\)"):
        accumulator.update([torch.zeros(1, 2, 2)], torch.ones(1, 2), torch.tensor([2]))
    with pytest.raises(NtpsInputError, match="no real tokens"):
        accumulator.update([torch.zeros(1, 2, 2)], torch.zeros(1, 2), torch.tensor([0]))


def test_non_finite_hidden_states_are_refused():
    accumulator = StatisticsAccumulator(2, 3, 2)
    good = torch.ones(1, 2, 3)
    broken = good.clone()
    broken[0, 1, 0] = float("nan")
    with pytest.raises(NtpsInputError, match="layer 1 contain NaN"):
        accumulator.update([good, broken], torch.ones(1, 2), torch.tensor([0]))
    padded_nan = good.clone()
    padded_nan[0, 1] = float("inf")
    accumulator.update([good, padded_nan], torch.tensor([[1, 0]]), torch.tensor([0]))


def test_empty_statistics_refuse_averaging():
    with pytest.raises(NtpsInputError, match="dataset is empty"):
        StatisticsAccumulator(1, 2, 2).result().averaged(0)


def test_paper_grid_covers_five_to_ninety_five_percent():
    fractions = [round(0.05 * i, 2) for i in range(1, 20)]
    ks = paper_grid_ks(576, fractions)
    assert ks[0] == 29 and ks[-1] == 547 and len(set(ks)) == 19

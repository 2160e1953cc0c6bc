"""ntps.core.statistics: streaming float64 statistics against Algorithm 1's literal sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ntps.core.errors import NtpsInputError
from ntps.core.statistics import (
    PRODUCTS,
    STORED_NAMES,
    LayerStatistics,
    StatisticsAccumulator,
    add_transition_products,
    bfloat16_pieces,
    transition_product_flops,
)
from tests.core.paper_reference import algorithm1_statistics
from tests.core.synthetic import CLASSES, HIDDEN, N_LAYERS, accumulate, random_texts


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


@pytest.mark.parametrize("products", ["float32", "bfloat16x3"])
def test_float32_accurate_products_round_cov0_and_cov1_only_and_only_as_float32_does(products):
    rng = np.random.default_rng(9)
    texts, labels = random_texts(rng, n_texts=23, max_length=9)
    exact = accumulate(texts, labels)
    rounded = accumulate(texts, labels, products=products)
    for name in ("mean_xx_upper", "mean_xy"):  # not products of the transitions: float64 either way
        np.testing.assert_array_equal(getattr(rounded, name), getattr(exact, name))
    for name in ("cov0_upper", "cov1"):
        expected, got = getattr(exact, name), getattr(rounded, name)
        assert got.dtype == np.float64 and not np.array_equal(got, expected)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
    with pytest.raises(NtpsInputError, match="one of"):
        StatisticsAccumulator(1, HIDDEN, CLASSES, products="float16")


def test_bfloat16_pieces_carry_24_bits_and_a_bfloat16_tensor_is_its_own_piece():
    x = torch.from_numpy(np.random.default_rng(10).normal(size=(50, 6)) * np.logspace(-3, 3, 6))
    pieces = bfloat16_pieces(x)
    assert len(pieces) == 3 and all(piece.dtype == torch.bfloat16 for piece in pieces)
    rest = x - sum(piece.double() for piece in pieces)
    assert float((rest.abs() / x.abs()).max()) <= 2.0**-24
    two_pieces = x - pieces[0].double() - pieces[1].double()
    assert float((two_pieces.abs() / x.abs()).max()) > 2.0**-24  # the third piece is needed
    exact = x.to(torch.bfloat16)
    assert len(bfloat16_pieces(exact)) == 1 and bfloat16_pieces(exact)[0] is exact


def test_bfloat16x3_products_of_bfloat16_next_states_are_as_accurate_as_float32():
    # A bfloat16 forward pass hands over bfloat16 states: one piece each, the prefix sums three.
    rng = np.random.default_rng(11)
    next_states = torch.from_numpy(rng.normal(size=(40, 9))).to(torch.bfloat16)
    prefixes = torch.from_numpy(rng.normal(size=(40, 9)) * 30)
    cov0, cov1 = torch.zeros(9, 9, dtype=torch.float64), torch.zeros(9, 9, dtype=torch.float64)
    add_transition_products(cov0, cov1, prefixes, next_states, "bfloat16x3")
    exact_cov1 = prefixes.T @ next_states.double()
    np.testing.assert_allclose(cov1, exact_cov1, rtol=0, atol=1e-6 * float(exact_cov1.abs().max()))
    exact_cov0 = torch.triu(prefixes.T @ prefixes)
    np.testing.assert_allclose(torch.triu(cov0), exact_cov0, rtol=0, atol=1e-6 * float(exact_cov0.abs().max()))
    with pytest.raises(NtpsInputError, match="one of"):
        add_transition_products(cov0, cov1, prefixes, next_states, "tf32")


def test_one_token_text_contributes_only_to_mean_statistics():
    rng = np.random.default_rng(2)
    state = rng.normal(size=(1, 1, HIDDEN))
    accumulator = StatisticsAccumulator(1, HIDDEN, CLASSES)
    accumulator.update([torch.from_numpy(state)], torch.ones(1, 1), torch.tensor([2]))
    statistics = accumulator.result()
    assert statistics.n_transitions == 0
    assert not statistics.cov0_upper.any() and not statistics.cov1.any()
    np.testing.assert_allclose(statistics.summed("mean_xx", 0), np.outer(state, state))
    np.testing.assert_allclose(statistics.mean_xy[0][:, 2], state.ravel())


def test_statistics_of_shards_add_up_to_the_whole():
    rng = np.random.default_rng(3)
    texts, labels = random_texts(rng, n_texts=20, max_length=6)
    whole = accumulate(texts, labels)
    first = accumulate([t[:8] for t in texts], labels[:8])
    second = accumulate([t[8:] for t in texts], labels[8:])
    summed = first + second
    for name in STORED_NAMES:
        np.testing.assert_allclose(getattr(summed, name), getattr(whole, name), rtol=1e-12, atol=1e-10)
    assert (summed.n_texts, summed.n_transitions) == (whole.n_texts, whole.n_transitions)
    restored = LayerStatistics.from_arrays(whole.to_arrays())
    np.testing.assert_array_equal(restored.cov1, whole.cov1)


def test_label_views_accumulated_together_equal_each_accumulated_alone():
    rng = np.random.default_rng(5)
    texts, labels = random_texts(rng, n_texts=17, max_length=6)
    second_view = rng.integers(0, 5, size=17)
    second_view[:5] = np.arange(5)
    together = accumulate(texts, np.stack([labels, second_view], axis=1), classes=[CLASSES, 5])
    assert together.n_classes == CLASSES + 5
    first, second = together.label_views([CLASSES, 5])
    for view, (view_labels, classes) in zip((first, second), ((labels, CLASSES), (second_view, 5))):
        alone = accumulate(texts, view_labels, classes=classes)
        for name in STORED_NAMES:
            np.testing.assert_allclose(getattr(view, name), getattr(alone, name), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(view.class_counts, alone.class_counts)
        assert view.cov0_upper is together.cov0_upper  # shared, not copied
    with pytest.raises(NtpsInputError, match="do not add up"):
        together.label_views([CLASSES, 4])
    with pytest.raises(NtpsInputError, match=r"label ids must lie in \[0, \[3, 5\]\)"):
        accumulate(texts, np.stack([labels, second_view + 1], axis=1), classes=[CLASSES, 5])


def test_statistics_keep_symmetric_sums_once_and_round_trip_exactly():
    rng = np.random.default_rng(4)
    texts, labels = random_texts(rng, n_texts=20, max_length=6)
    first, second = accumulate([t[:8] for t in texts], labels[:8]), accumulate([t[8:] for t in texts], labels[8:])
    stored = first.to_arrays()
    assert {"mean_xx", "cov0"}.isdisjoint(stored) and stored["cov0_upper"].shape == (N_LAYERS, HIDDEN * (HIDDEN + 1) // 2)
    whole_bytes = 8 * N_LAYERS * HIDDEN * (3 * HIDDEN + CLASSES)
    assert sum(stored[name].nbytes for name in STORED_NAMES) < 0.8 * whole_bytes
    for layer in range(N_LAYERS):
        for name in ("mean_xx", "cov0"):
            matrix = first.summed(name, layer)
            np.testing.assert_array_equal(matrix, matrix.T)
    restored = LayerStatistics.from_arrays(stored)
    for name in STORED_NAMES:
        np.testing.assert_array_equal(getattr(restored, name), getattr(first, name))
    # Stored shards still add up: the packed sums of two shards are the packed sum of their sum.
    summed = LayerStatistics.from_arrays(stored) + LayerStatistics.from_arrays(second.to_arrays())
    np.testing.assert_array_equal(summed.to_arrays()["cov0_upper"], stored["cov0_upper"] + second.to_arrays()["cov0_upper"])
    # Archives from before the packing (whole matrices) still load.
    legacy = {
        **{name: np.stack([first.summed(name, layer) for layer in range(N_LAYERS)]) for name in ("mean_xx", "cov0")},
        **{name: stored[name] for name in ("mean_xy", "cov1", "n_texts", "n_transitions", "class_counts")},
    }
    for name in STORED_NAMES:
        np.testing.assert_array_equal(getattr(LayerStatistics.from_arrays(legacy), name), getattr(first, name))


def test_non_finite_hidden_states_are_refused():
    accumulator = StatisticsAccumulator(2, 3, 2)
    good = torch.ones(1, 2, 3)
    broken = good.clone()
    broken[0, 1, 0] = float("nan")
    with pytest.raises(NtpsInputError, match="layer 1 contain NaN"):
        accumulator.update([good, broken], torch.ones(1, 2), torch.tensor([0]))
    # A NaN in a real state of a longer text is caught too (checked through the texts' sums).
    long_text = torch.ones(2, 5, 3)
    long_text[1, 3, 2] = float("nan")
    with pytest.raises(NtpsInputError, match="layer 0 contain NaN"):
        accumulator.update([long_text, long_text], torch.ones(2, 5), torch.tensor([0, 1]))


@pytest.mark.parametrize("padding", ["left", "right"])
def test_anything_in_padded_positions_leaves_the_statistics_as_zeros_there_would(padding):
    # A fully masked attention row can leave NaN or inf where the padding is.
    states = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]] if padding == "left" else [[1] * 5, [1, 1, 1, 0, 0]])
    zeroed, poisoned = states * mask.unsqueeze(-1), states.clone()
    padded = mask == 0
    poisoned[padded] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    results = []
    for layer_states in (zeroed, poisoned):
        accumulator = StatisticsAccumulator(1, 3, 2)
        accumulator.update([layer_states], mask, torch.tensor([0, 1]))
        results.append(accumulator.result())
    for name in STORED_NAMES:
        assert np.isfinite(getattr(results[1], name)).all()
        np.testing.assert_array_equal(getattr(results[1], name), getattr(results[0], name))


def test_the_statistics_are_handed_over_once_and_the_spent_accumulator_refuses_more():
    rng = np.random.default_rng(8)
    accumulator = StatisticsAccumulator(1, HIDDEN, CLASSES)
    states, mask = torch.from_numpy(rng.normal(size=(2, 4, HIDDEN))), torch.ones(2, 4)
    accumulator.update([states], mask, torch.tensor([0, 1]))
    statistics = accumulator.result()
    kept = {name: getattr(statistics, name).copy() for name in STORED_NAMES}
    with pytest.raises(NtpsInputError, match="already taken"):
        accumulator.update([states], mask, torch.tensor([0, 1]))
    with pytest.raises(NtpsInputError, match="already taken"):
        accumulator.result()
    for name in STORED_NAMES:  # nothing added to the arrays handed over
        np.testing.assert_array_equal(getattr(statistics, name), kept[name])


@pytest.mark.parametrize("d", [8, 10, 13])
def test_transition_product_flops_count_the_entries_the_products_compute(d):
    # Every entry a product computes becomes n (ones times ones); each costs 2 n operations.
    n = 5
    cov0, cov1 = torch.zeros(d, d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64)
    ones = torch.ones(n, d, dtype=torch.float64)
    add_transition_products(cov0, cov1, ones, ones)
    computed = int((cov0 == n).sum() + (cov1 == n).sum())
    assert transition_product_flops(n, d) == 2 * n * computed
    assert bool((torch.triu(cov0) == torch.triu(torch.full((d, d), float(n), dtype=torch.float64))).all())


@pytest.mark.parametrize("products", PRODUCTS)
def test_transition_products_equal_the_literal_sums_on_every_path(products):
    # Each kind of products against sum_i P_i P_i^T (its upper triangle, all that is stored) and
    # sum_i P_i H_i^T written out, added onto sums that already hold something.
    generator = np.random.default_rng(3)
    n, d = 7, 11
    prefixes, next_states = generator.normal(size=(n, d)), generator.normal(size=(n, d))
    start0, start1 = generator.normal(size=(d, d)), generator.normal(size=(d, d))
    cov0, cov1 = torch.tensor(start0), torch.tensor(start1)
    add_transition_products(cov0, cov1, torch.tensor(prefixes), torch.tensor(next_states), products)
    literal0 = start0 + sum(np.outer(prefixes[i], prefixes[i]) for i in range(n))
    literal1 = start1 + sum(np.outer(prefixes[i], next_states[i]) for i in range(n))
    tolerance = 1e-12 if products == "float64" else 1e-5
    upper = np.triu_indices(d)
    np.testing.assert_allclose(cov0.numpy()[upper], literal0[upper], rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(cov1.numpy(), literal1, rtol=tolerance, atol=tolerance)


def test_empty_statistics_refuse_averaging():
    with pytest.raises(NtpsInputError, match="dataset is empty"):
        StatisticsAccumulator(1, 2, 2).result().averaged(0)

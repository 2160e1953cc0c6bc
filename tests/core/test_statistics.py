"""ntps.core.statistics: streaming float64 statistics against Algorithm 1's literal sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ntps.core.errors import NtpsInputError
from ntps.core.statistics import LayerStatistics, StatisticsAccumulator
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

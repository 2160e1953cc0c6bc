"""ntps.core.label_null: NTPS under shuffled training labels, against the scores of the true labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ntps.core.errors import NtpsInputError
from ntps.core.excess_loss import Whitening
from ntps.core.label_null import LabelNull, label_permutations, null_columns, shuffled_label_scores
from ntps.core.linalg import NestedBasis
from ntps.core.ntps import score_tables
from ntps.core.subspaces import layer_subspaces
from tests.core.synthetic import CLASSES, accumulate, random_texts


def null_scores(states, labels, classes, orderings, mean_xx, v, ridge, device=None):
    """shuffled_label_scores with N and V factored as score_tables factors them."""
    spans = NestedBasis(v, device)
    whitening = Whitening.of(mean_xx, spans, ridge)
    return shuffled_label_scores(states, labels, classes, orderings, whitening, spans, device)


def pair(seed: int, n_texts: int = 60):
    rng = np.random.default_rng(seed)
    texts, labels = random_texts(rng, n_texts, 6)
    statistics = accumulate(texts, labels)
    pooled = {layer: np.stack([text.mean(axis=0) for text in layer_texts]) for layer, layer_texts in enumerate(texts)}
    return statistics, layer_subspaces(statistics, 1e-6), pooled, labels


def test_the_identity_ordering_gives_the_tables_scores_and_paper_is_undefined_beyond_the_signal_rank():
    statistics, subspaces, pooled, labels = pair(seed=30)
    table, _ = score_tables(statistics, subspaces, 1e-6, [0.5], released_code=False)
    for layer in range(statistics.n_layers):
        moments = statistics.averaged(layer)
        v = subspaces.autoregressive_vectors[layer]
        identity = np.arange(len(labels))[None]
        null = null_scores(pooled[layer], labels, CLASSES, identity, moments["mean_xx"], v, 1e-6)
        rank = int(subspaces.signal_ranks[layer])
        for variant in ("paper", "signal", "label_variance_kept"):
            expected = table[(table["layer"] == layer) & (table["variant"] == variant)].sort_values("k")["ntps"].to_numpy()
            got = null.variant(variant)[0]
            defined = slice(None, rank) if variant == "paper" else slice(None)
            np.testing.assert_allclose(got[defined], expected[defined], atol=1e-9)
        assert np.isnan(null.paper[0, rank:]).all()


def test_the_torch_path_gives_the_scipy_null():
    statistics, subspaces, pooled, labels = pair(seed=31)
    orderings = label_permutations(len(labels), 5, seed=0)
    mean_xx, v = statistics.averaged(1)["mean_xx"], subspaces.autoregressive_vectors[1]
    arguments = (pooled[1], labels, CLASSES, orderings, mean_xx, v, 1e-6)
    on_scipy, on_torch = null_scores(*arguments), null_scores(*arguments, device=torch.device("cpu"))
    for variant in ("paper", "signal", "label_variance_kept"):
        np.testing.assert_allclose(on_torch.variant(variant), on_scipy.variant(variant), atol=1e-10, equal_nan=True)


def test_labels_the_states_carry_stand_far_above_their_null_and_random_labels_do_not():
    rng = np.random.default_rng(32)
    n, d = 300, 6
    states = rng.normal(size=(n, d))
    carried = (states[:, 0] > 0).astype(int)  # read off the first direction of the states
    noise = rng.integers(0, 2, size=n)
    mean_xx = states.T @ states / n
    basis = np.eye(d)  # V's nested spans: the first coordinate first
    orderings = label_permutations(n, 40, seed=1)
    for labels, separated in ((carried, True), (noise, False)):
        observed = null_scores(states, labels, 2, np.arange(n)[None], mean_xx, basis, 0.0)
        null = null_scores(states, labels, 2, orderings, mean_xx, basis, 0.0)
        columns = null_columns(observed.label_variance_kept[0], null.label_variance_kept)
        if separated:
            assert columns["excess_over_null"][0] > 0.5 and columns["null_p_value"][0] == pytest.approx(1 / 41)
        else:
            assert abs(columns["excess_over_null"][0]) < 3 * columns["null_sd"][0] + 0.05
            assert columns["null_p_value"][0] > 0.05


def test_null_columns_follow_their_definitions():
    observed = np.array([0.5, 0.9, 0.2])
    null = np.array([[0.4, 0.95, np.nan], [0.6, 0.8, 0.1], [0.5, 0.85, 0.1]])
    columns = null_columns(observed, null)
    np.testing.assert_allclose(columns["null_mean"][:2], [0.5, 0.8666666666666667])
    np.testing.assert_allclose(columns["null_sd"][:2], null[:, :2].std(axis=0, ddof=1))
    np.testing.assert_allclose(columns["null_p_value"][:2], [3 / 4, 2 / 4])  # ties count as at least as high
    assert np.isnan(columns["null_mean"][2]) and np.isnan(columns["null_p_value"][2])
    # Equal scores that rounding split are ties (k = d: every labelling keeps all its variance).
    rounded = null_columns(np.ones(2), np.array([[1 - 5e-10, 1 - 1e-8], [1 - 3e-10, 1 - 2e-8]]))
    np.testing.assert_allclose(rounded["null_p_value"], [1.0, 1 / 3])


def test_score_tables_adds_the_null_columns_only_where_there_is_a_null():
    statistics, subspaces, pooled, labels = pair(seed=33)
    null = LabelNull({2: pooled[2]}, labels, CLASSES, label_permutations(len(labels), 8, seed=0))
    table, _ = score_tables(statistics, subspaces, 1e-6, [0.5], released_code=True, label_null=null)
    with_null = table["null_mean"].notna()
    assert set(table.loc[with_null, "layer"]) == {2} and "released_code" not in set(table.loc[with_null, "variant"])
    rows = table[(table["layer"] == 2) & (table["variant"] == "signal")]
    assert rows["null_mean"].notna().all() and (rows["n_shuffles"] == 8).all()
    np.testing.assert_allclose(rows["excess_over_null"], rows["ntps"] - rows["null_mean"])
    assert rows["null_p_value"].between(1 / 9, 1).all()


def test_bad_inputs_are_refused_in_words():
    with pytest.raises(NtpsInputError, match="at least 1 shuffle"):
        label_permutations(10, 0, seed=0)
    with pytest.raises(NtpsInputError, match="must match the 5 texts"):
        null_scores(np.ones((5, 2)), np.zeros(5, int), 2, np.zeros((3, 4), int), np.eye(2), np.eye(2), 0.0)

"""The released code's procedure against a literal transcription of it, and the exact excess loss
of Theorem 2 against explicit least-squares fits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from ntps.core.excess_loss import excess_loss_all_k, theorem2_bounds
from ntps.core.ntps import ntps_paper_all_k, score_tables, scored_variants
from ntps.core.released_code import RELEASED_FRACTIONS, released_alignment_scores, whitened_eigenvectors
from ntps.core.statistics import LayerStatistics
from ntps.core.subspaces import layer_subspaces, perception_subspace
from ntps.pipelines.reporting.nodes import plot_ntps_heatmaps
from tests.released_code_reference import released_dense_scores
from tests.test_core_math import CLASSES, HIDDEN, accumulate, labelled_features, random_texts


def synthetic_moments(rng, n_texts: int, d: int, c: int) -> dict[str, np.ndarray]:
    """Averaged statistics of random token sequences with label-dependent means, scaled as real
    hidden states are (a few large directions)."""
    scales = np.exp(rng.normal(size=d))
    labels = rng.integers(0, c, size=n_texts)
    class_means = rng.normal(size=(c, d))
    moments = {"mean_xx": 0, "mean_xy": 0, "cov0": 0, "cov1": 0}
    for label in labels:
        states = (rng.normal(size=(rng.integers(3, 9), d)) + class_means[label]) * scales
        prefixes = states.cumsum(axis=0)[:-1]
        mean_state = states.mean(axis=0)
        moments["mean_xx"] = moments["mean_xx"] + np.outer(mean_state, mean_state) / n_texts
        moments["mean_xy"] = moments["mean_xy"] + np.outer(mean_state, np.eye(c)[label]) / n_texts
        moments["cov0"] = moments["cov0"] + prefixes.T @ prefixes / n_texts
        moments["cov1"] = moments["cov1"] + prefixes.T @ states[1:] / n_texts
    return moments


def statistics_of(moments: dict[str, np.ndarray]) -> LayerStatistics:
    """One layer's LayerStatistics whose averages (n_texts = 1) are the given moments."""
    return LayerStatistics(
        **{name: value[None] for name, value in moments.items()},
        n_texts=1,
        n_transitions=1,
        class_counts=np.ones(moments["mean_xy"].shape[1], dtype=np.int64),
    )


@pytest.mark.parametrize("n_texts", [300, 25])  # 25 < d: meanXX is singular and whitening drops directions
def test_released_code_equals_a_literal_transcription_of_it(n_texts):
    rng = np.random.default_rng(11)
    moments = synthetic_moments(rng, n_texts, d=40, c=4)
    released = released_alignment_scores(**moments)
    reference = released_dense_scores(moments["mean_xy"], moments["mean_xx"], moments["cov1"], moments["cov0"])
    assert len(reference) == len(RELEASED_FRACTIONS) == 19
    np.testing.assert_array_equal(released.u_columns, [columns for columns, _, _ in reference])
    np.testing.assert_array_equal(released.v_columns, [columns for _, columns, _ in reference])
    np.testing.assert_allclose(released.scores, [score for _, _, score in reference], atol=1e-6)
    rank_u = whitened_eigenvectors(moments["mean_xy"] @ moments["mean_xy"].T, moments["mean_xx"]).rank
    assert (rank_u < 40) == (n_texts < 40)
    assert released.u_columns[-1] == int(RELEASED_FRACTIONS[-1] * rank_u)


def planted_pencils() -> dict[str, np.ndarray]:
    """N = cov0 = I and c = d = 12 classes, so U's and V's eigenvectors are the coordinate axes.
    U ranks e1 > e2 > ... > e12. V ranks e1, e2, e3 on top, as U does, but its bottom three are
    e4 < e5 < e6, directions U ranks high, while U's bottom three are e12 < e11 < e10."""
    d = 12
    autoregressive_order = np.array([1, 2, 3, 7, 8, 9, 10, 11, 12, 6, 5, 4]) - 1  # coordinates, top first
    autoregressive_eigenvalues = np.empty(d)
    autoregressive_eigenvalues[autoregressive_order] = np.arange(d, 0, -1.0)
    return {
        "mean_xx": np.eye(d),
        "mean_xy": np.diag(np.sqrt(np.arange(d, 0, -1.0))),
        "cov0": np.eye(d),
        "cov1": np.diag(np.sqrt(autoregressive_eigenvalues)),
    }


def test_released_code_scores_the_smallest_eigenvalue_directions_and_paper_the_largest():
    moments = planted_pencils()
    statistics = statistics_of(moments)
    ntps_table, _ = score_tables(statistics, layer_subspaces(statistics, ridge=0.0), 0.0, [0.1, 0.2, 0.3])
    released = ntps_table[ntps_table["variant"] == "released_code"].set_index("k_fraction")["ntps"]
    paper = ntps_table[ntps_table["variant"] == "paper"].set_index("k")["ntps"]
    top_first = released_alignment_scores(**moments, top_first=True)
    for index, fraction in enumerate(RELEASED_FRACTIONS[1:6], start=1):  # 1 to 3 of the 12 columns
        k = int(fraction * 12)
        # eigh's ascending order: U's e12, e11, e10 against V's e4, e5, e6: nothing in common.
        assert released[fraction] == pytest.approx(0.0, abs=1e-6)
        # Top first, as the paper writes it: e1..ek both.
        assert paper[k] == pytest.approx(1.0, abs=1e-9)
        assert top_first.scores[index] == pytest.approx(1.0, abs=1e-5)


def test_excess_loss_equals_explicit_least_squares_fits():
    rng = np.random.default_rng(12)
    n, d, c = 500, 9, 4
    labels = rng.integers(0, c, size=n)
    targets = np.eye(c)[labels]
    features = rng.normal(size=(n, d)) * np.exp(rng.normal(size=d)) + targets @ rng.normal(size=(c, d))
    v = rng.normal(size=(d, d))
    loss = excess_loss_all_k(features.T @ features / n, features.T @ targets / n, v, ridge=0.0)

    def least_squares_loss(inputs):
        weights, *_ = np.linalg.lstsq(inputs, targets, rcond=None)
        return float(((inputs @ weights - targets) ** 2).sum(axis=1).mean())

    best = least_squares_loss(features)
    for k in (1, 2, 4, 7, d):
        assert loss.excess[k - 1] == pytest.approx(least_squares_loss(features @ v[:, :k]) - best, abs=1e-9)
    assert loss.excess[-1] == pytest.approx(0.0, abs=1e-12)
    assert loss.explainable == pytest.approx(float((targets**2).sum(axis=1).mean()) - best, abs=1e-9)
    assert np.all(np.diff(loss.excess) <= 1e-12)
    assert np.all((loss.kept_share >= -1e-12) & (loss.kept_share <= 1 + 1e-12))


def test_theorem2_bounds_hold_where_its_proof_applies_and_are_flagged_where_not():
    rng = np.random.default_rng(13)
    features, targets = labelled_features(rng)
    (n, d), c = features.shape, targets.shape[1]
    n_moment, m_moment = features.T @ features / n, features.T @ targets / n
    perception = perception_subspace(n_moment, m_moment, ridge=0.0)
    checked = 0
    for trial in range(20):
        v = rng.normal(size=(d, d)) + (trial % 3) * perception.eigenvectors
        loss = excess_loss_all_k(n_moment, m_moment, v, ridge=0.0)
        paper = ntps_paper_all_k(perception.eigenvectors, v)
        bounds = theorem2_bounds(loss, perception.eigenvalues, perception.eigenvectors, paper, n_moment, 0.0)
        # From k = r = c on, the proof's identity T(V_k) = sum_{i<=k} Lambda_i ||V*^T u*_i||^2 holds.
        assert bounds.holds[c - 1 :].all()
        assert np.all(bounds.lower[c - 1 :] <= bounds.excess_loss_vs_u[c - 1 :] + 1e-12)
        checked += int((bounds.lower[c - 1] > 1e-6) and (1 - paper[c - 1] > 1e-3))
    assert checked > 10

    # k = 1 < r: V_1 = e2 holds almost all that U_1 = e1 explains, yet NTPS(U_1, V_1) = 0, so eq. (41)'s
    # lower bound Lambda_1 (1 - 0) exceeds the true excess loss Lambda_1 - Lambda_2.
    planted = planted_pencils()
    eigen = perception_subspace(planted["mean_xx"], planted["mean_xy"], ridge=0.0)
    swapped = np.eye(12)[:, [1, 0, *range(2, 12)]]
    loss = excess_loss_all_k(planted["mean_xx"], planted["mean_xy"], swapped, ridge=0.0)
    bounds = theorem2_bounds(
        loss, eigen.eigenvalues, eigen.eigenvectors, ntps_paper_all_k(eigen.eigenvectors, swapped), planted["mean_xx"], 0.0
    )
    assert bounds.excess_loss_vs_u[0] == pytest.approx(1.0) and bounds.lower[0] == pytest.approx(12.0)
    assert not bounds.holds[0] and bounds.holds[1]


def test_excess_loss_is_unchanged_when_the_states_and_v_move_with_an_invertible_map():
    rng = np.random.default_rng(14)
    n, d, c = 300, 9, 4
    targets = np.eye(c)[rng.integers(0, c, size=n)]
    features = rng.normal(size=(n, d)) + targets @ rng.normal(size=(c, d))
    v = rng.normal(size=(d, d))
    mixing = rng.normal(size=(d, d)) + 3 * np.eye(d)
    mapped = features @ mixing.T  # m -> A m, so V -> A^(-T) V sees the same features V^T m
    original = excess_loss_all_k(features.T @ features / n, features.T @ targets / n, v, ridge=0.0)
    moved = excess_loss_all_k(mapped.T @ mapped / n, mapped.T @ targets / n, np.linalg.solve(mixing.T, v), ridge=0.0)
    np.testing.assert_allclose(moved.excess, original.excess, atol=1e-10)
    assert moved.explainable == pytest.approx(original.explainable, rel=1e-10)
    assert original.excess[0] > 1e-3


def test_pipeline_excess_loss_is_unchanged_by_a_scaled_rotation_of_the_hidden_states():
    # V's eigenproblem measures next-token error in the states' own Euclidean norm, so V moves with
    # the map for a rotation times a scale; for a general invertible map V's span itself changes.
    rng = np.random.default_rng(16)
    texts, labels = random_texts(rng, n_texts=80, max_length=8)
    rotation = 2.5 * scipy.stats.ortho_group.rvs(HIDDEN, random_state=17)
    tables = []
    for states in (texts, [[x @ rotation.T for x in layer_texts] for layer_texts in texts]):
        statistics = accumulate(states, labels)
        tables.append(score_tables(statistics, layer_subspaces(statistics, ridge=0.0), 0.0, [0.5])[1])
    original, mapped = tables
    scale = original["explainable_label_variance"].abs().max()
    np.testing.assert_allclose(mapped["excess_loss"], original["excess_loss"], atol=1e-8 * scale)
    np.testing.assert_allclose(mapped["explainable_label_variance"], original["explainable_label_variance"], rtol=1e-8)
    assert original["excess_loss"].max() > 1e-3 * scale  # not trivially zero
    assert (original.groupby("layer")["excess_loss"].last().abs() < 1e-10 * scale).all()  # V_d spans everything


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


@pytest.mark.parametrize("released_code", [True, False])
def test_heatmaps_draw_one_column_per_variant_the_table_holds(released_code):
    rng = np.random.default_rng(18)
    texts, labels = random_texts(rng, n_texts=40, max_length=8)
    statistics = accumulate(texts, labels)
    subspaces = layer_subspaces(statistics, ridge=1e-6)
    ntps_table, _ = score_tables(statistics, subspaces, 1e-6, [0.5], released_code=released_code)
    ntps_table.insert(0, "dataset", "synthetic")
    ntps_table.insert(0, "model", "random")
    figure = plot_ntps_heatmaps(ntps_table)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    drawn = [title.split(": ")[1].split(" ")[0] for title in titles]
    assert drawn == scored_variants(ntps_table)
    assert ("released_code" in drawn) == released_code

"""The eigen and scores stages work one layer at a time: with their archives on disk, the memory
they add is a small multiple of one layer's d x d matrices, not of all layers (the 8B models of the
paper have 33 layers of 4,096^2)."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pandas as pd
from kedro.io.core import Version

from ntps.core.probes import one_hot
from ntps.core.statistics import LayerStatistics
from ntps.io import NpzDataset
from ntps.modeling.hidden_states import PooledFeatures
from ntps.pipelines.eigen_subspaces.nodes import solve_eigen_subspaces
from ntps.pipelines.ntps_scores.nodes import score_ntps
from ntps.run_parameters import load_parameters
from tests.conftest import REPOSITORY, peak_traced_bytes

N_LAYERS, HIDDEN, CLASSES, N_TEXTS = 8, 256, 4, 320


def synthetic_pair(rng: np.random.Generator) -> tuple[LayerStatistics, PooledFeatures]:
    """Statistics of N_LAYERS layers and the pooled training states they were summed from."""
    labels = np.arange(N_TEXTS) % CLASSES
    scales = np.exp(rng.normal(size=HIDDEN))
    pooled = (rng.normal(size=(N_TEXTS, N_LAYERS, HIDDEN)) + rng.normal(size=(CLASSES, 1, HIDDEN))[labels]) * scales
    tokens = rng.normal(size=(N_LAYERS, 2 * N_TEXTS, HIDDEN)) * scales
    next_tokens = rng.normal(size=(N_LAYERS, 2 * N_TEXTS, HIDDEN)) * scales
    statistics = LayerStatistics.from_matrices(
        mean_xx=np.einsum("nld,nle->lde", pooled, pooled),
        mean_xy=np.einsum("nld,nc->ldc", pooled, one_hot(labels, CLASSES)),
        cov0=np.einsum("lnd,lne->lde", tokens, tokens),
        cov1=np.einsum("lnd,lne->lde", tokens, next_tokens),
        n_texts=N_TEXTS,
        n_transitions=2 * N_TEXTS,
        class_counts=np.bincount(labels),
    )
    features = PooledFeatures(pooled.astype(np.float32), np.arange(N_LAYERS), labels, np.full(N_TEXTS, "train"))
    return statistics, features


def test_eigen_and_scores_stages_hold_a_few_layers_not_all_of_them(tmp_path):
    statistics, pooled = synthetic_pair(np.random.default_rng(0))
    version = Version(None, "2026-11-30T00.00.00.000Z")
    archives = {
        # conf/paper_grid's removal of the statistics and subspaces once used
        name: NpzDataset(filepath=str(tmp_path / f"{name}.npz"), version=version, remove_when_released=name != "pooled")
        for name in ("statistics", "subspaces", "pooled")
    }
    archives["statistics"].save(statistics.to_arrays())
    archives["pooled"].save(pooled.to_arrays())
    parameters = load_parameters(REPOSITORY)  # conf/base: 20 shuffles of the null
    parameters["eigen_subspaces"]["device"] = "cpu"
    parameters["ntps_scores"]["released_code"] = True  # its float32 copies of the statistics add to the peak
    tables = []

    def eigen_stage():
        archives["subspaces"].save(solve_eigen_subspaces(archives["statistics"].load(), parameters["eigen_subspaces"]))

    def scores_stage():
        tables.extend(
            score_ntps(
                archives["subspaces"].load(),
                archives["statistics"].load(),
                archives["pooled"].load(),
                parameters["eigen_subspaces"],
                parameters["ntps_scores"],
                parameters["forward_pass"],
                model="synthetic",
                dataset="pair",
            )
        )

    # One layer's statistics and subspaces as the stages compute on them: float64 d x d matrices
    # (stored, meanXX and cov0 are packed triangles and U and V float32, about 3/5 of these bytes).
    # Holding all 8 layers would take 8 times this, far above the bound of 3.
    float64_layer = 8 * HIDDEN * (3 * HIDDEN + CLASSES)  # meanXX, cov0, cov1 and meanXY
    float64_layer += 8 * 2 * HIDDEN * HIDDEN  # U and V
    eigen_peak = peak_traced_bytes(eigen_stage)
    scores_peak = peak_traced_bytes(scores_stage)
    assert eigen_peak < 3 * float64_layer, eigen_peak / float64_layer
    assert scores_peak < 3 * float64_layer, scores_peak / float64_layer
    ntps_table, loss_table = tables
    assert set(ntps_table["layer"]) == set(range(N_LAYERS)) and ntps_table["null_mean"].notna().any()
    # The same tables as the whole statistics in memory give.
    in_memory = score_ntps(
        solve_eigen_subspaces(statistics.to_arrays(), parameters["eigen_subspaces"]),
        statistics.to_arrays(),
        pooled.to_arrays(),
        parameters["eigen_subspaces"],
        parameters["ntps_scores"],
        parameters["forward_pass"],
        model="synthetic",
        dataset="pair",
    )
    pd.testing.assert_frame_equal(ntps_table, in_memory[0], rtol=0, atol=1e-10)
    # Theorem 2's bounds are C (1 - NTPS), C up to meanXX's condition number: NTPS's rounding times C.
    bounds = ["theorem2_lower", "theorem2_upper"]
    pd.testing.assert_frame_equal(loss_table.drop(columns=bounds), in_memory[1].drop(columns=bounds), rtol=0, atol=1e-10)
    for column in bounds:
        scale = in_memory[1][column].abs().max()
        np.testing.assert_allclose(loss_table[column], in_memory[1][column], rtol=0, atol=1e-13 * scale)

    # The disk space of a removed archive comes back only once nothing maps it: the stages' results
    # (the tables, alive here) hold no view of the memory-mapped archives, so once Kedro releases
    # them (paper_grid removes them then) the process maps no removed file.
    for name in ("statistics", "subspaces"):
        archives[name].release()
    gc.collect()
    maps = Path("/proc/self/maps")
    if maps.exists():
        held = [line for line in maps.read_text().splitlines() if str(tmp_path) in line and "(deleted)" in line]
        assert held == []
    assert not list(tmp_path.glob("statistics.npz/*/*")) and not list(tmp_path.glob("subspaces.npz/*/*"))

"""The eigen_subspaces stage in memory: the node hands each pair's statistics to the core solver."""

from __future__ import annotations

import numpy as np

from ntps.core.statistics import LayerStatistics
from ntps.core.subspaces import layer_subspaces
from ntps.pipelines import eigen_subspaces
from tests.pipelines.conftest import DATASETS, MODEL, build, run_in_memory


def test_every_pair_gets_the_core_solution_of_its_statistics(stage_parameters, stage_data):
    outputs = run_in_memory(build(eigen_subspaces, stage_parameters), stage_parameters, stage_data)
    ridge = stage_parameters["eigen_subspaces"]["ridge"]
    for dataset in DATASETS:
        statistics = LayerStatistics.from_arrays(stage_data[f"{MODEL}.{dataset}.layer_statistics"])
        expected = layer_subspaces(statistics, ridge=ridge).to_arrays()
        solved = outputs[f"{MODEL}.{dataset}.eigen_subspaces"]
        assert solved.keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_array_equal(solved[name], value)
        n_classes = statistics.mean_xy.shape[-1]
        assert (solved["signal_ranks"] >= 1).all() and (solved["signal_ranks"] <= n_classes).all()

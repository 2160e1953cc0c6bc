"""The hidden_statistics stage in memory: one forward pass per pair gives the training split's
statistics and every text's pooled features; shards of it add up to the same."""

from __future__ import annotations

import copy

import numpy as np

from ntps.pipelines import hidden_statistics
from tests.pipelines.conftest import DATASETS, MODEL, build, run_in_memory


def test_one_pass_per_pair_and_two_shards_give_the_same_statistics_and_features(stage_parameters, stage_data):
    single = run_in_memory(build(hidden_statistics, stage_parameters), stage_parameters, stage_data)
    sharded_parameters = copy.deepcopy(stage_parameters)
    sharded_parameters["forward_pass"]["shards"] = 2
    sharded_pipeline = build(hidden_statistics, sharded_parameters)
    assert len(sharded_pipeline.nodes) == 3 * len(DATASETS)  # 2 shards and a reduce node per pair
    sharded = run_in_memory(sharded_pipeline, sharded_parameters, stage_data)
    for dataset in DATASETS:
        statistics = single[f"{MODEL}.{dataset}.layer_statistics"]
        assert int(statistics["n_texts"]) == 48  # the training split only
        assert statistics["cov0_upper"].shape == (3, 16 * 17 // 2) and statistics["mean_xy"].shape[:2] == (3, 16)
        for name, value in statistics.items():
            np.testing.assert_allclose(sharded[f"{MODEL}.{dataset}.layer_statistics"][name], value, rtol=1e-10, atol=1e-12)
        pooled = single[f"{MODEL}.{dataset}.pooled_features"]
        assert pooled["features"].shape == (64, 3, 16)  # every text, train and test, every hidden state
        np.testing.assert_array_equal(sharded[f"{MODEL}.{dataset}.pooled_features"]["features"], pooled["features"])

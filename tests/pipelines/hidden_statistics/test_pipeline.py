"""The hidden_statistics stage in memory: one forward pass per text sample gives the training
split's statistics and every text's pooled features for each of its label views; shards of it add
up to the same."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest

from ntps.core.errors import NtpsInputError
from ntps.pipelines import hidden_statistics
from ntps.pipelines.fan_out import per_text_sample
from ntps.pipelines.hidden_statistics.nodes import extract_hidden_features
from ntps.pipelines.hidden_statistics.pipeline import template as hidden_statistics_template
from ntps.run_parameters import building_with
from tests.pipelines.conftest import DATASETS, MODEL, SHARED_VIEWS, build, run_in_memory


def test_one_pass_per_text_sample_and_two_shards_give_the_same_statistics_and_features(stage_parameters, stage_data):
    pipeline = build(hidden_statistics, stage_parameters)
    samples = ("rotten_tomatoes", "election_tweets", "__".join(SHARED_VIEWS))
    expected = sorted(f"{MODEL}.{sample}.extract_hidden_features" for sample in samples)
    assert sorted(node.name for node in pipeline.nodes) == expected
    single = run_in_memory(pipeline, stage_parameters, stage_data)
    sharded_parameters = copy.deepcopy(stage_parameters)
    sharded_parameters["forward_pass"]["shards"] = 2
    sharded_pipeline = build(hidden_statistics, sharded_parameters)
    assert len(sharded_pipeline.nodes) == 3 * (len(DATASETS) - 1)  # 2 shards and a reduce node per text sample
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
        np.testing.assert_array_equal(pooled["label_ids"], stage_data[f"{MODEL}.{dataset}.tokenized_texts"]["label_id"])


@pytest.mark.parametrize("shards", [1, 2])
def test_a_pass_over_the_statistics_split_alone_gives_its_statistics_and_pools_only_its_texts(
    stage_parameters, stage_data, shards
):
    """What the stages after LoRA run: the training texts alone, batched among themselves, give the
    statistics of the pass over every text (up to float rounding) and those texts' pooled features."""
    parameters = copy.deepcopy(stage_parameters)
    parameters["forward_pass"]["shards"] = shards
    with building_with(parameters):
        pipeline = per_text_sample(functools.partial(hidden_statistics_template, statistics_split_only=True))
    only = run_in_memory(pipeline, parameters, stage_data)
    for dataset in DATASETS:
        statistics = stage_data[f"{MODEL}.{dataset}.layer_statistics"]
        assert int(only[f"{MODEL}.{dataset}.layer_statistics"]["n_texts"]) == int(statistics["n_texts"]) == 48
        for name, value in statistics.items():
            np.testing.assert_allclose(only[f"{MODEL}.{dataset}.layer_statistics"][name], value, rtol=1e-5, atol=1e-8)
        pooled, pooled_alone = stage_data[f"{MODEL}.{dataset}.pooled_features"], only[f"{MODEL}.{dataset}.pooled_features"]
        train = pooled["splits"] == "train"
        assert pooled_alone["features"].shape == (48, 3, 16) and (pooled_alone["splits"] == "train").all()
        np.testing.assert_allclose(pooled_alone["features"], pooled["features"][train], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(pooled_alone["label_ids"], pooled["label_ids"][train])


def test_label_views_share_the_texts_statistics_and_each_equals_a_pass_of_its_own(stage_parameters, stage_data):
    ratings, recommended = (stage_data[f"{MODEL}.{view}.layer_statistics"] for view in SHARED_VIEWS)
    np.testing.assert_array_equal(ratings["cov1"], recommended["cov1"])
    assert ratings["mean_xy"].shape[2] == 5 and recommended["mean_xy"].shape[2] == 2
    alone_parameters = copy.deepcopy(stage_parameters)
    alone_parameters["run"]["datasets"] = [SHARED_VIEWS[1]]
    alone = run_in_memory(build(hidden_statistics, alone_parameters), alone_parameters, stage_data)
    for name, value in alone[f"{MODEL}.{SHARED_VIEWS[1]}.layer_statistics"].items():
        np.testing.assert_allclose(recommended[name], value, rtol=1e-10, atol=1e-12)


def test_label_views_that_hold_different_texts_are_refused(stage_data):
    ratings = stage_data[f"{MODEL}.{SHARED_VIEWS[0]}.tokenized_texts"]
    with pytest.raises(NtpsInputError, match="label views of one text sample hold different texts"):
        extract_hidden_features({}, {}, ratings, ratings.iloc[1:])

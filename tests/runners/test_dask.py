"""Sharded statistics on ParallelRunner and ntps.runners.DaskRunner equal one pass."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from ntps.core.statistics import STORED_NAMES, LayerStatistics
from tests.conftest import kedro_run, local_model_run


def load_statistics(project, dataset):
    (path,) = sorted((project / f"data/04_feature/tiny_llama/{dataset}/layer_statistics.npz").glob("*/*.npz"))[-1:]
    with np.load(path) as archive:
        statistics = LayerStatistics.from_arrays({name: archive[name] for name in archive.files})
    return {**{name: getattr(statistics, name) for name in STORED_NAMES}, "n_texts": statistics.n_texts}


@pytest.mark.end_to_end
def test_sharded_statistics_on_parallel_runner_and_dask_equal_the_single_pass(project, model_cache, tiny_model):
    one_dataset = local_model_run("tiny_llama", tiny_model, ["election_tweets"])
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(one_dataset))
    # Dask's workers run torch on one thread (its nanny sets OMP_NUM_THREADS=1); float32 matrix
    # products summed in another order differ by ~1e-4 relative in a real model's large activations,
    # so every run here uses one thread and the comparison isolates what sharding does.
    one_thread = {"OMP_NUM_THREADS": "1"}
    assert kedro_run(project, model_cache, extra_env=one_thread).returncode == 0
    single = load_statistics(project, "election_tweets")

    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump({**one_dataset, "forward_pass": {"shards": 2}}))
    for runner in ("ParallelRunner", "ntps.runners.DaskRunner"):
        result = kedro_run(
            project, model_cache, pipeline="hidden_statistics", extra_args=[f"--runner={runner}"], extra_env=one_thread
        )
        assert result.returncode == 0, result.stderr[-4000:]
        log = result.stdout + result.stderr
        assert "extract_shard_features_0" in log and "extract_shard_features_1" in log and "combine_shards" in log
        sharded = load_statistics(project, "election_tweets")
        assert int(sharded["n_texts"]) == int(single["n_texts"])
        for name in STORED_NAMES:
            scale = np.abs(single[name]).max()
            np.testing.assert_allclose(
                sharded[name], single[name], rtol=1e-10, atol=1e-10 * scale, err_msg=f"{runner}: {name}"
            )

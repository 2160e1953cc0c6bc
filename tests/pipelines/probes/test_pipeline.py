"""The probes stage in memory: one row of probe metrics per pair, on its pooled features."""

from __future__ import annotations

from ntps.pipelines import probes
from tests.pipelines.conftest import DATASETS, MODEL, build, run_in_memory


def test_every_pair_gets_probe_metrics_on_its_own_splits(stage_parameters, stage_data):
    outputs = run_in_memory(build(probes, stage_parameters), stage_parameters, stage_data)
    for dataset in DATASETS:
        (row,) = outputs[f"{MODEL}.{dataset}.probe_metrics"].to_dict("records")
        assert (row["model"], row["dataset"], row["n_train"], row["n_test"]) == (MODEL, dataset, 48, 16)
        assert 0 <= row["logistic_train_accuracy"] <= 1 and 0 <= row["logistic_test_accuracy"] <= 1
        assert row["ols_training_mse"] >= 0 and 0 <= row["h_score"] <= row["n_classes"] - 1 + 1e-9

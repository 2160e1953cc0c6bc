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


def test_every_pair_gets_a_probe_of_every_pooled_layer(stage_parameters, stage_data):
    outputs = run_in_memory(build(probes, stage_parameters), stage_parameters, stage_data)
    for dataset in DATASETS:
        table = outputs[f"{MODEL}.{dataset}.layer_probe_table"]
        assert (table["model"] == MODEL).all() and (table["dataset"] == dataset).all()
        assert table["hidden_state"].tolist() == sorted(table["hidden_state"]) and len(table) > 1
        assert table["best_layer"].sum() == 1
        assert table.loc[table["best_layer"], "loo_accuracy"].item() == table["loo_accuracy"].max()
        assert ((table["loo_low"] <= table["loo_accuracy"]) & (table["loo_accuracy"] <= table["loo_high"])).all()
        assert ((table["test_low"] <= table["test_accuracy"]) & (table["test_accuracy"] <= table["test_high"])).all()
        assert ((0 <= table["majority_rate"]) & (table["majority_rate"] <= 1)).all()

"""The lora and from_scratch pipelines end to end on a real model's first blocks."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from ntps.core.ntps import VARIANTS
from ntps.core.statistics import LayerStatistics
from ntps.modeling.adapter_format import LoraAdapter
from tests.conftest import four_layer_run, kedro_run


@pytest.mark.end_to_end
def test_lora_and_from_scratch_pipelines_end_to_end(project, model_cache, four_layer_model):
    """ntps, then lora and from_scratch with a few steps, on the embedded model's first 4 blocks and
    3 datasets."""
    datasets = ["rotten_tomatoes", "election_tweets", "clothing_departments"]
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(four_layer_run(four_layer_model, datasets)))
    # The released procedure's rows in Table 2 are tested on small tables (tests/reports); the
    # small runs leave it off (SMALL_RUN_PARAMS), so the change table holds the other variants.
    assert kedro_run(project, model_cache).returncode == 0
    steps = {"batch_size": 4, "checkpoint_every": 2, "steps": 4, "epochs": "null"}
    lora_settings = {**steps, "validation_fraction": 0.25, "evaluations_per_epoch": 2, "train_accuracy_texts": 5}
    lora = kedro_run(project, model_cache, {f"lora.{key}": value for key, value in lora_settings.items()}, pipeline="lora")
    assert lora.returncode == 0, lora.stderr[-4000:]

    pair = project / "data/06_models/smollm2_4_layers/election_tweets"
    (adapter_folder,) = (pair / "lora_adapter").glob("*/lora_adapter")
    adapter = LoraAdapter.load(adapter_folder)
    # rank 32 adapters on q, k, v (576 -> 576 for q, 576 -> 192 for k and v) in each of 4 blocks
    assert sum(value.size for value in adapter.adapter_weights.values()) == 4 * 32 * ((576 + 576) + 2 * (576 + 192))
    assert adapter.head_weights["weight"].shape == (2, 576)
    (card_path,) = (pair / "adapted_language_model_card.json").glob("*/*.json")
    assert json.loads(card_path.read_text())["adapter"] == str(adapter_folder.resolve())

    def statistics(relative):
        (path,) = (project / "data/04_feature/smollm2_4_layers/election_tweets" / relative).glob("*/*.npz")
        return LayerStatistics.from_arrays(dict(np.load(path)))

    before, after = statistics("layer_statistics.npz"), statistics("after_lora/layer_statistics.npz")
    # The adapters sit inside the attention blocks: the embeddings are untouched, the blocks are not.
    np.testing.assert_allclose(after.summed("cov0", 0), before.summed("cov0", 0), rtol=1e-10, atol=0)
    assert not np.allclose(after.summed("cov0", -1), before.summed("cov0", -1), rtol=1e-6)

    reports = project / "data/08_reporting"
    gains = pd.read_parquet(next((reports / "lora_gains.parquet").glob("*/*")))
    assert sorted(gains["dataset"]) == sorted(datasets)
    np.testing.assert_allclose(gains["accuracy_gain"], gains["lora_test_accuracy"] - gains["probe_test_accuracy"])
    np.testing.assert_allclose(
        gains["gain_over_best_layer"], gains["lora_test_accuracy"] - gains["best_layer_probe_accuracy"]
    )
    metrics = pd.read_parquet(next((reports / "lora_metrics.parquet").glob("*/*")))
    assert (metrics["validation_texts"] > 0).all() and metrics["validation_accuracy"].between(0, 1).all()
    assert (metrics["train_accuracy_texts"] == 5).all() and metrics["lora_train_accuracy"].isin(np.arange(6) / 5).all()
    assert set(metrics["autocast"]) <= {"bfloat16", "none"} and (metrics["optimizer"] == "adamw").all()
    margin = 2 * np.sqrt(metrics["chance_accuracy"] * (1 - metrics["chance_accuracy"]) / metrics["validation_texts"])
    assert (metrics["learned"] == (metrics["validation_accuracy"] - metrics["chance_accuracy"] > margin)).all()
    assert gains["learned"].dtype == bool and gains["chance_accuracy"].between(0.1, 1).all()
    log = pd.read_parquet(next((reports / "lora_training_log.parquet").glob("*/*")))
    assert log.groupby("dataset")["validation_accuracy"].count().ge(2).all(), "a learning curve per pair"
    # The lora pipeline writes the run report again, now with its answer on fine-tuning.
    run_reports = sorted((reports / "run_report_markdown.md").glob("*/*"))
    assert len(run_reports) == 2 and "## Is fine-tuning worth it?" in run_reports[-1].read_text()
    assert "Is fine-tuning worth it?" not in run_reports[0].read_text()
    change = pd.read_parquet(next((reports / "ntps_change_after_lora.parquet").glob("*/*")))
    assert len(change) == (len(VARIANTS) - 1) * len(datasets) and change["ntps_after"].between(0, 1).all()
    report = next((reports / "lora_report.md").glob("*/*")).read_text()
    assert "NTPS after LoRA (the paper's Table 2)" in report
    assert "| smollm2_4_layers | ntps_paper | best_in_sample |" in report
    for name in ("ntps_vs_lora_gain.png", "ntps_change_after_lora.png", "lora_training_curves.png"):
        assert next((reports / name).glob("*/*")).stat().st_size > 10_000
    assert not list((project / "data/06_models/training_checkpoints").rglob("*.pt")), "checkpoints go once training ends"

    scratch = kedro_run(
        project, model_cache, {f"from_scratch.{key}": value for key, value in steps.items()}, pipeline="from_scratch"
    )
    assert scratch.returncode == 0, scratch.stderr[-4000:]
    table = pd.read_parquet(next((reports / "linear_vs_full.parquet").glob("*/*")))
    assert sorted(table["dataset"]) == sorted(datasets) and table["full_test_accuracy"].between(0, 1).all()
    assert (
        "| dataset | smollm2_4_layers Linear | smollm2_4_layers Full |"
        in next((reports / "linear_vs_full_report.md").glob("*/*")).read_text()
    )

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ntps").experiment_id], order_by=["attributes.start_time ASC"])
    lora_run = runs[1]
    assert {"reports/lora_report.md", "reports/ntps_vs_lora_gain.png", "reports/lora_gains.parquet"} <= {
        item.path for item in client.list_artifacts(lora_run.info.run_id, "reports")
    }
    assert "lora_summary_metrics.accuracy_gain.smollm2_4_layers.election_tweets" in lora_run.data.metrics

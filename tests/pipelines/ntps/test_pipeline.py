"""The ntps pipeline over 2 models x 2 datasets as namespaces, on the CPU."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
import yaml

from ntps.pipelines.ntps.pipeline import STAGES
from tests.conftest import kedro_run


@pytest.mark.end_to_end
def test_two_models_by_two_datasets_run_as_namespaces_loading_each_model_once(
    project, model_cache, tiny_model, four_layer_model
):
    local = {
        "run": {"models": ["tiny_llama", "smollm2_4_layers"], "datasets": ["rotten_tomatoes", "election_tweets"]},
        "models": {
            "tiny_llama": {"source": "local", "path": str(tiny_model)},
            "smollm2_4_layers": {"source": "local", "path": str(four_layer_model)},
        },
    }
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(local))
    result = kedro_run(project, model_cache)
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stdout + result.stderr
    assert log.count("loading model") == 2, "each model is loaded once per run"
    assert log.count("reusing the loaded model") == 2

    (table_path,) = (project / "data/08_reporting/ntps_table.parquet").glob("*/ntps_table.parquet")
    table = pd.read_parquet(table_path)
    pairs = set(zip(table["model"], table["dataset"]))
    assert pairs == {(m, d) for m in local["run"]["models"] for d in local["run"]["datasets"]}
    assert table.groupby("model")["layer"].max().to_dict() == {"tiny_llama": 2, "smollm2_4_layers": 4}
    card_path = next((project / "data/06_models/smollm2_4_layers/language_model_card.json").glob("*/*.json"))
    assert json.loads(card_path.read_text())["n_hidden_states"] == 5

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ntps").experiment_id])
    assert {"stage_seconds.hidden_statistics", "stage_peak_rss_mb.hidden_statistics"} <= set(run.data.metrics)
    assert run.data.metrics["stage_seconds.hidden_statistics"] > 0
    # Every node is timed under its stage folder, report nodes whose function lives in ntps.reports too.
    timed = {key.removeprefix("stage_seconds.") for key in run.data.metrics if key.startswith("stage_seconds.")}
    assert timed == {stage.__name__.rsplit(".", 1)[-1] for stage in STAGES}
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "reports")}
    assert "reports/node_resources.csv" in artifacts

    subset = kedro_run(project, model_cache, extra_args=["--namespaces=smollm2_4_layers.election_tweets"])
    assert subset.returncode == 0, subset.stderr[-4000:]
    ran = [line for line in (subset.stdout + subset.stderr).splitlines() if "Running node:" in line]
    names = {line.split("Running node:")[1].split(":")[0].strip() for line in ran}
    assert names == {
        "tokenize_texts",
        "extract_hidden_features",
        "solve_eigen_subspaces",
        "score_ntps",
        "fit_probes",
        "probe_every_layer",
    }
    assert len(ran) == len(names) and all("smollm2_4_layers.election_tweets." in line for line in ran)

"""The paper's grid as configuration: the registry, its offline errors, and a namespaced
2 models x 2 datasets run on the CPU."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
import yaml

from ntps.pipelines.fan_out import grid_from_parameters, load_parameters
from ntps.sources.language_models import ModelNotAvailableError, resolve_model_location
from ntps.sources.text_datasets import DatasetNotAvailableError, compose_texts, read_raw_dataset
from tests.conftest import REPOSITORY, kedro_run

PAPER_DATASETS = {
    "Bhuvaneshwari/intent_classification",
    "marksverdhei/clickbait_title_classification",
    "stanfordnlp/sst2",
    "PriyaPatel/Bias_identification",
    "legacy-datasets/banking77",
    "dair-ai/emotion",
    "ucirvine/sms_spam",
    "curaihealth/medical_questions_pairs",
    "cornell-movie-review-data/rotten_tomatoes",
    "tau/commonsense_qa",
    "climatebert/climate_sentiment",
    "stanfordnlp/imdb",
}
PAPER_MODELS = {
    "Qwen/Qwen2-0.5B",
    "Qwen/Qwen2-1.5B",
    "Qwen/Qwen2-7B",
    "apple/OpenELM-270M",
    "apple/OpenELM-450M",
    "apple/OpenELM-1_1B",
    "apple/OpenELM-3B",
    "meta-llama/Meta-Llama-3-8B",
}


@pytest.fixture(scope="module")
def parameters():
    return load_parameters(REPOSITORY)


def test_every_registry_entry_names_its_text_label_and_splits(parameters):
    datasets, models = parameters["datasets"], parameters["models"]
    assert PAPER_DATASETS <= {spec.get("hf_id") for spec in datasets.values()}
    assert PAPER_MODELS <= {spec.get("hf_id") for spec in models.values()}
    for name, spec in datasets.items():
        assert spec["source"] in {"embedded", "huggingface", "local"}, name
        assert spec.get("label_column"), name
        assert bool(spec.get("text_column")) != bool(spec.get("text_columns")), name
        if spec["source"] == "huggingface":
            assert "train" in spec["splits"] and set(spec["splits"]) <= {"train", "test"}, name
    for name, spec in models.items():
        assert spec["source"] in {"embedded_gguf", "huggingface", "local"}, name
        if "OpenELM" in spec.get("hf_id", ""):
            assert spec["trust_remote_code"] and spec["tokenizer"] == "meta-llama/Llama-2-7b-hf"


def test_the_paper_grid_environment_selects_8_models_by_12_datasets():
    grid = grid_from_parameters(load_parameters(REPOSITORY, env="paper_grid"))
    assert len(grid.models) == 8 and len(grid.datasets) == 12 and len(grid.pairs()) == 96
    forward = load_parameters(REPOSITORY, env="paper_grid")["forward_pass"]
    assert (forward["device"], forward["dtype"]) == ("cuda", "bfloat16")


def test_registry_entries_missing_offline_name_their_id_and_how_to_fetch_them(parameters):
    with pytest.raises(DatasetNotAvailableError, match=r"(?s)'stanfordnlp/sst2'.*HF_HUB_OFFLINE.*datasets.load_dataset"):
        read_raw_dataset(parameters["datasets"]["sst2"])
    with pytest.raises(ModelNotAvailableError, match=r"(?s)'Qwen/Qwen2-0.5B'.*hf download Qwen/Qwen2-0.5B"):
        resolve_model_location(parameters["models"]["qwen2_0_5b"], "unused")


def test_texts_compose_from_several_columns_and_multiple_choices(parameters):
    spec = parameters["datasets"]["commonsense_qa"]
    raw = pd.DataFrame(
        {
            "question": ["Where do fish live?"],
            "choices": [{"label": ["A", "B"], "text": ["water", "trees"]}],
            "answerKey": ["A"],
        }
    )
    assert compose_texts(raw, spec["text_columns"], spec["text_template"]).tolist() == [
        "Where do fish live? (A) water (B) trees"
    ]
    pairs = parameters["datasets"]["medical_questions_pairs"]
    raw = pd.DataFrame({"question_1": ["Is it flu?"], "question_2": ["Do I have flu?"], "label": [1]})
    assert compose_texts(raw, pairs["text_columns"], pairs["text_template"]).tolist() == ["Is it flu?\nDo I have flu?"]


def test_runtime_params_keep_sibling_keys_when_an_environment_has_parameters(project):
    from kedro.config import OmegaConfigLoader

    from ntps import settings as project_settings

    (project / "conf/local/parameters.yml").write_text("run: {models: [smollm2_135m], datasets: [rotten_tomatoes]}\n")
    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"),
        runtime_params={"forward_pass": {"batch_size": 8}},
        **project_settings.CONFIG_LOADER_ARGS,
    )
    parameters = loader["parameters"]
    assert parameters["forward_pass"]["batch_size"] == 8 and parameters["forward_pass"]["dtype"] == "float32"
    assert parameters["run"]["datasets"] == ["rotten_tomatoes"] and "sst2" in parameters["datasets"]


@pytest.mark.end_to_end
def test_two_models_by_two_datasets_run_as_namespaces_loading_each_model_once(
    project, model_cache, embedded_model, four_layer_model
):
    base = load_parameters(REPOSITORY)
    local = {
        "run": {"models": ["smollm2_135m", "smollm2_4_layers"], "datasets": ["rotten_tomatoes", "election_tweets"]},
        "models": {
            "smollm2_135m": base["models"]["smollm2_135m"],
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
    assert table.groupby("model")["layer"].max().to_dict() == {"smollm2_135m": 30, "smollm2_4_layers": 4}
    card_path = next((project / "data/06_models/smollm2_4_layers/language_model_card.json").glob("*/*.json"))
    assert json.loads(card_path.read_text())["n_hidden_states"] == 5

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ntps").experiment_id])
    assert {"stage_seconds.hidden_statistics", "stage_peak_rss_mb.hidden_statistics"} <= set(run.data.metrics)
    assert run.data.metrics["stage_seconds.hidden_statistics"] > 0
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "reports")}
    assert "reports/node_resources.csv" in artifacts

    subset = kedro_run(project, model_cache, extra_args=["--namespaces=smollm2_4_layers.election_tweets"])
    assert subset.returncode == 0, subset.stderr[-4000:]
    ran = [line for line in (subset.stdout + subset.stderr).splitlines() if "Running node:" in line]
    names = {line.split("Running node:")[1].split(":")[0].strip() for line in ran}
    assert names == {"tokenize_texts", "extract_hidden_features", "solve_eigen_subspaces", "score_ntps", "fit_probes"}
    assert len(ran) == 5 and all("smollm2_4_layers.election_tweets." in line for line in ran)

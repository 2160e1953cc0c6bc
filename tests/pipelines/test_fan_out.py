"""The DAG's shape comes from the running session's environment and parameters
(ntps.run_parameters, ntps.pipelines.run_selection, ntps.pipelines.fan_out, ntps.hooks.RunParametersHook)."""

from __future__ import annotations

import warnings

import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from ntps.core.errors import NtpsInputError
from ntps.hooks import stage_of
from ntps.pipelines import ntps, probes
from ntps.pipelines.ntps.pipeline import STAGES
from ntps.pipelines.run_selection import run_plan, selection_from_parameters
from ntps.run_parameters import load_parameters
from tests.conftest import REPOSITORY, kedro_run
from tests.pipelines.conftest import build


@pytest.fixture
def narrow_env(project):
    """The project with an extra environment `narrow` that runs one dataset."""
    (project / "conf/narrow").mkdir()
    (project / "conf/narrow/parameters.yml").write_text(
        yaml.safe_dump({"run": {"models": ["smollm2_135m"], "datasets": ["election_tweets"]}})
    )
    return project


@pytest.mark.end_to_end
def test_kedro_run_env_builds_that_environments_dag(narrow_env, model_cache):
    project = narrow_env
    narrow = kedro_run(project, model_cache, pipeline="data_ingestion", extra_args=["--env", "narrow"])
    assert narrow.returncode == 0, narrow.stderr[-3000:]
    assert sorted(path.name for path in (project / "data/01_raw").iterdir()) == ["election_tweets"]

    # The paper grid's datasets come from a hub, which the tests never reach: the run must try
    # them (their DAG was built) and stop with the error that says how to fetch one.
    paper = kedro_run(project, model_cache, pipeline="data_ingestion", extra_args=["--env", "paper_grid"])
    assert paper.returncode != 0
    assert "HF_HUB_OFFLINE" in paper.stderr and "--repo-type dataset" in paper.stderr, paper.stderr[-3000:]
    assert sorted(path.name for path in (project / "data/01_raw").iterdir()) == ["election_tweets"]


def test_each_session_in_one_process_builds_its_own_dag(narrow_env, monkeypatch):
    monkeypatch.chdir(narrow_env)
    bootstrap_project(narrow_env)
    from kedro.framework.project import pipelines

    def node_names(env: str, params: dict | None = None) -> list[str]:
        with KedroSession.create(project_path=narrow_env, env=env, runtime_params=params) as session:
            session.load_context()
            return sorted(node.name for node in pipelines["hidden_statistics"].nodes)

    assert node_names("narrow") == ["smollm2_135m.election_tweets.extract_hidden_features"]
    assert len(node_names("local")) == 6  # the embedded default's six datasets
    sharded = node_names("narrow", {"forward_pass": {"shards": 2}})
    assert sharded == [
        f"smollm2_135m.election_tweets.{name}"
        for name in ("combine_shards", "extract_shard_features_0", "extract_shard_features_1")
    ]
    assert node_names("narrow") == ["smollm2_135m.election_tweets.extract_hidden_features"]


def test_pipelines_built_outside_a_session_read_the_environment_from_disk(project, monkeypatch):
    (project / "conf/local/parameters.yml").write_text(
        yaml.safe_dump({"run": {"models": ["smollm2_135m"], "datasets": ["reuters_r8", "newsgroups20"]}})
    )
    monkeypatch.chdir(project)
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    monkeypatch.setattr("ntps.run_parameters._session_parameters", None)
    from ntps.pipelines.run_selection import run_selection

    assert run_selection().datasets == ("reuters_r8", "newsgroups20")
    monkeypatch.setenv("KEDRO_ENV", "paper_grid")
    assert len(run_selection().pairs()) == 96


LOCAL_MODEL = {"source": "local", "path": "folder"}
LOCAL_DATASET = {"source": "local", "path": "texts.csv", "text_column": "text", "label_column": "label"}


def test_run_selection_refuses_unknown_names():
    parameters = {
        "run": {"models": ["m"], "datasets": ["d", "e"]},
        "models": {"m": LOCAL_MODEL},
        "datasets": {"d": LOCAL_DATASET},
    }
    with pytest.raises(NtpsInputError, match=r"run.datasets names \['e'\], which are not in the `datasets:` registry"):
        selection_from_parameters(parameters)
    parameters["datasets"]["e"] = {**LOCAL_DATASET, "path": "other.csv"}
    assert selection_from_parameters(parameters).pairs() == [("m", "d"), ("m", "e")]


def test_a_misspelt_or_foreign_key_in_a_selected_entry_stops_the_run_naming_it_and_the_allowed_ones():
    parameters = {"run": {"models": ["m"], "datasets": ["d"]}, "models": {"m": LOCAL_MODEL}}
    with pytest.raises(
        NtpsInputError, match=r"(?s)datasets.d: unknown key\(s\) \['keep_label'\] for source local.*'keep_labels'"
    ):
        selection_from_parameters({**parameters, "datasets": {"d": {**LOCAL_DATASET, "keep_label": ["a"]}}})
    with pytest.raises(NtpsInputError, match=r"datasets.d: unknown key\(s\) \['hf_config'\] for source local"):
        selection_from_parameters({**parameters, "datasets": {"d": {**LOCAL_DATASET, "hf_config": "x"}}})
    with pytest.raises(NtpsInputError, match=r"models.m: unknown key\(s\) \['trust_remote_cod'\]"):
        selection_from_parameters(
            {**parameters, "models": {"m": {**LOCAL_MODEL, "trust_remote_cod": True}}, "datasets": {"d": LOCAL_DATASET}}
        )
    with pytest.raises(NtpsInputError, match=r"models.m: source must be one of \['embedded_gguf', 'huggingface', 'local'\]"):
        selection_from_parameters({**parameters, "models": {"m": {"path": "x"}}, "datasets": {"d": LOCAL_DATASET}})
    # Entries the run does not select are not checked: a registry may hold entries for other runs.
    unselected = {"d": LOCAL_DATASET, "other": {"source": "ftp"}}
    assert selection_from_parameters({**parameters, "datasets": unselected}).datasets == ("d",)


def test_the_paper_grid_environment_selects_8_models_by_12_datasets():
    selection = selection_from_parameters(load_parameters(REPOSITORY, env="paper_grid"))
    assert len(selection.models) == 8 and len(selection.datasets) == 12 and len(selection.pairs()) == 96
    forward = load_parameters(REPOSITORY, env="paper_grid")["forward_pass"]
    assert (forward["device"], forward["dtype"]) == ("cuda", "bfloat16")


def test_the_study_environment_covers_12_tasks_from_6_corpora_with_enough_texts():
    parameters = load_parameters(REPOSITORY, env="study")
    selection = selection_from_parameters(parameters)
    corpora = {parameters["datasets"][dataset]["corpus"] for dataset in selection.datasets}
    assert len(selection.datasets) >= 12 and len(corpora) >= 6, corpora
    assert all(parameters["datasets"][dataset]["source"] == "embedded" for dataset in selection.datasets)
    # 2 x d training texts for the embedded model (d = 576), 512 held out.
    assert parameters["sampling"]["max_texts"] == {"train": 1152, "test": 512}


def test_label_views_of_the_same_texts_share_one_text_sample():
    parameters = load_parameters(REPOSITORY, env="study")
    samples = selection_from_parameters(parameters).text_samples
    assert ("newsgroups20", "newsgroups_hierarchy") in samples  # label_pattern relabels, drops nothing
    assert ("clothing_ratings", "clothing_recommended") in samples
    # keep_labels drops texts, so these hold texts of their own; so does another embedded file.
    assert ("clothing_departments",) in samples and ("rotten_tomatoes",) in samples and ("reuters_r52",) in samples
    assert sorted(view for views in samples for view in views) == sorted(parameters["run"]["datasets"])


def test_the_composed_pipeline_tags_every_node_with_its_stage(stage_parameters):
    composed = build(ntps, stage_parameters)
    probe_nodes = {node.name for node in build(probes, stage_parameters).nodes}
    assert {node.name for node in composed.only_nodes_with_tags("stage.probes").nodes} == probe_nodes
    # A report node whose function lives in ntps.reports is timed under its stage folder.
    (null_summary,) = [node for node in composed.nodes if node.name == "summarize_label_null"]
    assert null_summary.func.__module__ == "ntps.reports.label_null" and stage_of(null_summary) == "reporting"
    assert all(stage_of(node) in {stage.__name__.rsplit(".", 1)[-1] for stage in STAGES} for node in composed.nodes)


def test_label_views_sharing_a_forward_pass_keep_whole_namespaces(stage_parameters):
    """Kedro warns of a namespace that a node outside it interrupts: the views' shared tokenization
    and forward pass run in the text sample's namespace, before any node of the views' own."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        composed = build(ntps, stage_parameters)
    assert not [str(warning.message) for warning in caught if "is interrupted" in str(warning.message)]
    shared = [node.name for node in composed.nodes if node.namespace == "tiny_llama.clothing_ratings__clothing_recommended"]
    assert sorted(shared) == [
        f"tiny_llama.clothing_ratings__clothing_recommended.{name}" for name in ("extract_hidden_features", "tokenize_texts")
    ]


def test_the_run_plan_names_every_model_and_dataset_and_where_it_comes_from():
    parameters = {
        "run": {"models": ["m", "qwen"], "datasets": ["d", "sst2"]},
        "models": {"m": LOCAL_MODEL, "qwen": {"source": "huggingface", "hf_id": "Qwen/Qwen2.5-0.5B"}},
        "datasets": {
            "d": LOCAL_DATASET,
            "sst2": {
                "source": "huggingface",
                "hf_id": "stanfordnlp/sst2",
                "text_column": "sentence",
                "label_column": "label",
            },
        },
    }
    assert run_plan(parameters) == [
        "model m: local folder",
        "model qwen: Hugging Face id Qwen/Qwen2.5-0.5B",
        "dataset d: local texts.csv",
        "dataset sst2: Hugging Face id stanfordnlp/sst2",
    ]

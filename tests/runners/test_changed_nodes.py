"""ntps.runners.ChangedNodesRunner: rerun only what a change reaches, finish a killed run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import SMALL_RUN_PARAMS, kedro_run, local_model_run, offline_environment

CHANGED_NODES_RUNNER = "--runner=ntps.runners.ChangedNodesRunner"


def runner_log(result) -> tuple[set[str], set[str]]:
    """(nodes the ChangedNodesRunner ran, nodes it skipped), from its log lines."""
    ran, skipped = set(), set()
    for line in (result.stdout + result.stderr).splitlines():
        if "Skipped node: " in line:
            skipped.add(line.split("Skipped node: ")[1].split(" ")[0])
        elif "Running node " in line and "(" in line:
            ran.add(line.split("Running node ")[1].split(" ")[0])
    return ran, skipped


@pytest.mark.end_to_end
def test_changed_nodes_runner_reruns_what_a_change_reaches_and_finishes_a_killed_run(project, model_cache, tiny_model):
    # A tiny random model: the test is about which nodes run, not about the model.
    local = local_model_run("tiny_llama", tiny_model, ["rotten_tomatoes"])
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(local))
    first = kedro_run(project, model_cache, extra_args=[CHANGED_NODES_RUNNER])
    assert first.returncode == 0, first.stderr[-4000:]
    everything, skipped = runner_log(first)
    assert skipped == set() and len(everything) > 10

    unchanged = kedro_run(project, model_cache, extra_args=[CHANGED_NODES_RUNNER])
    assert unchanged.returncode == 0, unchanged.stderr[-4000:]
    assert runner_log(unchanged) == (set(), everything)

    ridge = kedro_run(project, model_cache, {"eigen_subspaces.ridge": 1.0e-5}, extra_args=[CHANGED_NODES_RUNNER])
    assert ridge.returncode == 0, ridge.stderr[-4000:]
    ran, skipped = runner_log(ridge)
    downstream_of_the_ridge = {
        "tiny_llama.rotten_tomatoes.solve_eigen_subspaces",
        "tiny_llama.rotten_tomatoes.score_ntps",
        "combine_ntps_tables",
        "summarize_ntps",
        "plot_ntps_heatmaps",
        "summarize_label_null",
        "plot_ntps_null_heatmaps",
        "combine_excess_loss_tables",
        "summarize_theorem2",
        "plot_excess_loss",
        "correlate_configurations",
        "summarize_correlations",
        "write_correlation_report",
        "log_correlation_metrics",
        "plot_ntps_vs_probes",
        "plot_correlation_heatmaps",
        "plot_score_comparison",
        "write_run_report",
    }
    assert ran == downstream_of_the_ridge and skipped == everything - downstream_of_the_ridge

    forced = kedro_run(
        project,
        model_cache,
        {"eigen_subspaces.ridge": 1.0e-5, "rerun.force": "true"},
        "eigen_subspaces",
        [CHANGED_NODES_RUNNER],
    )
    assert forced.returncode == 0 and runner_log(forced) == (
        {"tiny_llama.rotten_tomatoes.solve_eigen_subspaces"},
        set(),
    )

    # A change at the start of the DAG makes every later node run again; kill that run midway.
    store = project / "data/node_fingerprints.json"
    before = json.loads(store.read_text())
    params = {**SMALL_RUN_PARAMS, "tokenization.max_tokens": 12, "model_cache_dir": str(model_cache)}
    command = [sys.executable, "-m", "kedro", "run", "--pipelines=ntps", CHANGED_NODES_RUNNER, "--params"]
    command.append(",".join(f"{key}={value}" for key, value in params.items()))
    process = subprocess.Popen(
        command, cwd=project, env=offline_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        recorded = json.loads(store.read_text())
        if (
            recorded["tiny_llama.rotten_tomatoes.extract_hidden_features"]["fingerprint"]
            != before["tiny_llama.rotten_tomatoes.extract_hidden_features"]["fingerprint"]
        ):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    recorded = json.loads(store.read_text())
    finished = {name for name in recorded if recorded[name]["fingerprint"] != before[name]["fingerprint"]}
    assert "tiny_llama.rotten_tomatoes.tokenize_texts" in finished

    rerun = kedro_run(project, model_cache, {"tokenization.max_tokens": 12}, extra_args=[CHANGED_NODES_RUNNER])
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    ran, skipped = runner_log(rerun)
    assert finished <= skipped and ran.isdisjoint(finished) and ran | skipped == everything
    assert "tiny_llama.rotten_tomatoes.score_ntps" in ran, "the unfinished part of the DAG ran"


def test_a_file_or_hub_snapshot_a_parameter_names_is_part_of_the_fingerprint(tmp_path, monkeypatch):
    """Editing a local dataset in place reruns the node that reads it; an unchanged file does not; a new
    revision in the Hugging Face cache reruns the node of an hf_id."""
    from huggingface_hub import constants
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node

    from ntps.runners import ChangedNodesRunner

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    csv = tmp_path / "texts.csv"
    csv.write_text("text,label\na,x\nb,y\n")
    refs = tmp_path / "hub/datasets--org--texts/refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("1111")
    reads = []

    def read(entry, hub_entry):
        reads.append(csv.read_text())
        return len(reads)

    pipeline = Pipeline([node(read, ["params:dataset", "params:hub_dataset"], "count", name="read")])

    def run() -> int:
        catalog = DataCatalog(
            datasets={
                "params:dataset": MemoryDataset({"source": "local", "path": str(csv)}),
                "params:hub_dataset": MemoryDataset({"source": "huggingface", "hf_id": "org/texts"}),
                "count": MemoryDataset(),
            }
        )
        before = len(reads)
        ChangedNodesRunner(fingerprints_file=tmp_path / "fingerprints.json").run(pipeline, catalog)
        return len(reads) - before

    assert run() == 1 and run() == 0
    csv.write_text("text,label\na,y\nb,x\n")  # labels rotated in place
    assert run() == 1 and run() == 0
    (refs / "main").write_text("2222")  # a new revision downloaded
    assert run() == 1 and run() == 0

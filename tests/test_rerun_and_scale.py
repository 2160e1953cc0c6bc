"""Rerunning only what changed, sharded statistics on ParallelRunner and Dask, and the DAG in kedro-viz."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from ntps.core.statistics import STATISTIC_NAMES
from ntps.modeling.hidden_states import extract_hidden_states, shard_positions
from tests.conftest import SMALL_RUN_PARAMS, four_layer_run, kedro_run, offline_environment
from tests.test_sources_and_extraction import tiny_llama

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


def test_shards_are_whole_batches_whose_statistics_add_up_to_one_pass():
    model = tiny_llama()
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 12, size=23)
    tokenized = pd.DataFrame(
        {
            "input_ids": [rng.integers(1, 50, size=n).tolist() for n in lengths],
            "n_tokens": lengths,
            "label_id": rng.integers(0, 3, size=23),
            "split": rng.choice(["train", "test"], size=23, p=[0.7, 0.3]),
        }
    )
    batch_size, n_shards = 4, 3
    shards = [shard_positions(tokenized, batch_size, n_shards, shard) for shard in range(n_shards)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(23))
    assert [len(rows) % batch_size for rows in shards[:-1]] == [0] * (n_shards - 1)
    run = functools.partial(
        extract_hidden_states, model, n_classes=3, batch_size=batch_size, pad_token_id=0, statistics_split="train"
    )
    whole, whole_features = run(tokenized)
    parts = [run(tokenized.iloc[rows]) for rows in shards]
    total = functools.reduce(lambda a, b: a + b, [statistics for statistics, _ in parts])
    assert total.n_texts == whole.n_texts and total.n_transitions == whole.n_transitions
    for name in STATISTIC_NAMES:
        np.testing.assert_allclose(getattr(total, name), getattr(whole, name), rtol=1e-10, atol=1e-12)
    for rows, (_, features) in zip(shards, parts):
        np.testing.assert_array_equal(features.features, whole_features.features[rows])


@pytest.mark.end_to_end
def test_changed_nodes_runner_reruns_what_a_change_reaches_and_finishes_a_killed_run(project, model_cache, four_layer_model):
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(four_layer_run(four_layer_model, ["rotten_tomatoes"])))
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
        "smollm2_4_layers.rotten_tomatoes.solve_eigen_subspaces",
        "smollm2_4_layers.rotten_tomatoes.score_ntps",
        "combine_ntps_tables",
        "summarize_ntps",
        "plot_ntps_heatmaps",
        "combine_excess_loss_tables",
        "summarize_theorem2",
        "plot_excess_loss",
        "correlate_configurations",
        "summarize_correlations",
        "write_correlation_report",
        "log_correlation_metrics",
        "plot_ntps_vs_probes",
        "plot_correlation_heatmaps",
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
        {"smollm2_4_layers.rotten_tomatoes.solve_eigen_subspaces"},
        set(),
    )

    # A change at the start of the DAG makes every later node run again; kill that run midway.
    store = project / "data/node_fingerprints.json"
    before = json.loads(store.read_text())
    params = {**SMALL_RUN_PARAMS, "tokenization.max_tokens": 12, "model_cache_dir": str(model_cache)}
    command = [sys.executable, "-m", "kedro", "run", "--pipeline=ntps", CHANGED_NODES_RUNNER, "--params"]
    command.append(",".join(f"{key}={value}" for key, value in params.items()))
    process = subprocess.Popen(
        command, cwd=project, env=offline_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        recorded = json.loads(store.read_text())
        if (
            recorded["smollm2_4_layers.rotten_tomatoes.extract_hidden_features"]["fingerprint"]
            != before["smollm2_4_layers.rotten_tomatoes.extract_hidden_features"]["fingerprint"]
        ):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    recorded = json.loads(store.read_text())
    finished = {name for name in recorded if recorded[name]["fingerprint"] != before[name]["fingerprint"]}
    assert "smollm2_4_layers.rotten_tomatoes.tokenize_texts" in finished

    rerun = kedro_run(project, model_cache, {"tokenization.max_tokens": 12}, extra_args=[CHANGED_NODES_RUNNER])
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    ran, skipped = runner_log(rerun)
    assert finished <= skipped and ran.isdisjoint(finished) and ran | skipped == everything
    assert "smollm2_4_layers.rotten_tomatoes.score_ntps" in ran, "the unfinished part of the DAG ran"


def load_statistics(project, dataset):
    (path,) = sorted((project / f"data/04_feature/smollm2_4_layers/{dataset}/layer_statistics.npz").glob("*/*.npz"))[-1:]
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


@pytest.mark.end_to_end
def test_sharded_statistics_on_parallel_runner_and_dask_equal_the_single_pass(project, model_cache, four_layer_model):
    one_dataset = four_layer_run(four_layer_model, ["election_tweets"])
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(one_dataset))
    # Dask's workers run torch on one thread (its nanny sets OMP_NUM_THREADS=1); float32 matrix
    # products summed in another order differ by ~1e-4 relative in this model's large activations,
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
        for name in STATISTIC_NAMES:
            scale = np.abs(single[name]).max()
            np.testing.assert_allclose(
                sharded[name], single[name], rtol=1e-10, atol=1e-10 * scale, err_msg=f"{runner}: {name}"
            )


@pytest.mark.end_to_end
def test_kedro_viz_build_renders_the_ntps_pipeline_in_headless_chromium(project, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is needed: scripts/install.sh installs it"
    build = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
        cwd=project,
        env=offline_environment(),
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(project / "build"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"http://127.0.0.1:{server.server_address[1]}/?pipeline_id=ntps",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    finally:
        server.shutdown()
    drawn = set(re.findall(r'<text class="pipeline-node__text"[^>]*>([^<]+)</text>', page.stdout))
    # The flowchart's SVG labels: nodes and datasets outside the namespaces, and the collapsed
    # model and dataset namespaces.
    expected = {"combine_ntps_tables", "summarize_correlations", "plot_ntps_vs_probes", "ntps_table", "smollm2_135m"}
    assert expected <= drawn, f"missing from the rendered flowchart: {expected - drawn}"

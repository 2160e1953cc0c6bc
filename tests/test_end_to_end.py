"""`kedro run --pipelines=ntps` on the embedded default model and datasets, offline."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import yaml

from ntps.core.correlation import STATISTICS
from ntps.core.ntps import VARIANTS
from ntps.core.released_code import RELEASED_FRACTIONS
from ntps.core.statistics import LayerStatistics
from ntps.pipelines.eigen_subspaces.nodes import solve_eigen_subspaces
from ntps.pipelines.ntps_scores.nodes import score_ntps
from ntps.reports.correlation_study import REFERENCE_SCORES
from ntps.run_parameters import load_parameters
from tests.conftest import REPOSITORY, SMALL_RUN_PARAMS, four_layer_run, kedro_run, local_model_run, offline_environment
from tests.core.paper_reference import algorithm1_ntps

pytestmark = pytest.mark.end_to_end

DEFAULT_DATASETS = {
    "rotten_tomatoes",
    "election_tweets",
    "newsgroups20",
    "clothing_ratings",
    "clothing_departments",
    "reuters_r8",
}
REPORTS = {
    "ntps_table.parquet",
    "ntps_heatmaps.png",
    "probe_metrics.parquet",
    "ntps_probe_correlations.parquet",
    "correlation_summary.parquet",
    "correlation_report.md",
    "ntps_vs_probes.png",
    "correlation_heatmaps.png",
    "score_comparison.png",
    "excess_loss_table.parquet",
    "theorem2_summary.csv",
    "excess_loss.png",
}


def snapshot(root):
    """path -> (size, mtime, sha256 of the first MiB) for every file under data/."""
    state = {}
    for path in sorted((root / "data").rglob("*")):
        if path.is_file():
            with open(path, "rb") as stream:
                head = hashlib.sha256(stream.read(1 << 20)).hexdigest()
            state[path.relative_to(root)] = (path.stat().st_size, path.stat().st_mtime_ns, head)
    return state


def literal_scores(statistics: LayerStatistics, layer: int, k: int, ridge: float) -> dict[str, float]:
    """Algorithm 1 written out on one layer's whole averaged matrices (no streaming, no packing,
    no shared factorization): signal NTPS(U_r, V_k) with a pseudo-inverse, and the label variance
    span(V_k) keeps, tr(V_k^T M M^T V_k (V_k^T N V_k)^-1) / tr(M^T N^-1 M)."""
    moments = statistics.averaged(layer)
    d = moments["mean_xx"].shape[0]

    def top_first(a, b):
        return scipy.linalg.eigh(a, b + ridge * np.trace(b) / d * np.eye(d))[1][:, ::-1]

    m, n = moments["mean_xy"], moments["mean_xx"] + ridge * np.trace(moments["mean_xx"]) / d * np.eye(d)
    u, v = top_first(m @ m.T, moments["mean_xx"]), top_first(moments["cov1"] @ moments["cov1"].T, moments["cov0"])
    v_k = v[:, :k]
    kept = np.trace(v_k.T @ m @ m.T @ v_k @ np.linalg.inv(v_k.T @ n @ v_k)) / np.trace(m.T @ np.linalg.solve(n, m))
    return {"signal": algorithm1_ntps(u, v, k, u_columns=np.linalg.matrix_rank(m)), "label_variance_kept": kept}


def versions(root, relative):
    return sorted(path.name for path in (root / relative).iterdir())


def test_ntps_run_covers_every_layer_and_k(project, model_cache, embedded_model):
    # The released code's float32 procedure (about 1 s per layer here, 3 minutes of this run) is
    # left off; the rerun test below runs it end to end on the embedded model's first 4 blocks.
    first = kedro_run(project, model_cache)
    assert first.returncode == 0, first.stderr[-4000:]
    # Third-party notices a user cannot act on are filtered (ntps.third_party_warnings); none is left.
    notices = [line for line in (first.stdout + first.stderr).splitlines() if "Warning:" in line]
    assert not notices, notices[:5]

    (card_path,) = (project / "data/06_models/smollm2_135m/language_model_card.json").glob("*/*.json")
    card = json.loads(card_path.read_text())
    n_layers, hidden = card["n_hidden_states"], card["hidden_size"]
    assert (n_layers, hidden) == (31, 576)

    (table_path,) = (project / "data/08_reporting/ntps_table.parquet").glob("*/ntps_table.parquet")
    table = pd.read_parquet(table_path)
    assert set(table["dataset"]) == DEFAULT_DATASETS and set(table["model"]) == {"smollm2_135m"}
    assert set(table["variant"]) == set(VARIANTS) - {"released_code"}
    for (dataset, variant), rows in table.groupby(["dataset", "variant"]):
        assert rows["ntps"].between(-1e-6, 1 + 1e-6).all()
        assert rows.groupby("layer")["on_paper_grid"].sum().eq(19).all()
        assert len(rows) == n_layers * hidden
        assert set(zip(rows["layer"], rows["k"])) == {(layer, k) for layer in range(n_layers) for k in range(1, hidden + 1)}
        assert (rows["v_columns"] == rows["k"]).all()
    at_d = table[table["variant"].isin(["paper", "label_variance_kept"]) & (table["k"] == hidden)]["ntps"]
    assert at_d.sub(1).abs().max() < 1e-8
    # The streamed, per-layer stages (memory-mapped packed statistics, shared factorizations) give
    # what Algorithm 1 written out on the whole matrices gives, to 1e-6: the two differ in rounding
    # only, which meanXX's and cov0's conditioning amplifies to 1e-9..1.5e-8 on the default run.
    (statistics_path,) = (project / "data/04_feature/smollm2_135m/newsgroups20/layer_statistics.npz").glob("*/*.npz")
    with np.load(statistics_path) as archive:
        statistics = LayerStatistics.from_arrays(dict(archive))
    stored = table[table["dataset"] == "newsgroups20"].set_index(["layer", "variant", "k"])["ntps"]
    ridge = yaml.safe_load((project / "conf/base/parameters_eigen_subspaces.yml").read_text())["eigen_subspaces"]["ridge"]
    for layer in (0, n_layers // 2, n_layers - 1):
        for k in (29, 288, 547):
            for variant, expected in literal_scores(statistics, layer, k, ridge).items():
                assert stored[layer, variant, k] == pytest.approx(expected, abs=1e-6), (layer, variant, k)
    # And the same nodes on the pair's whole statistics in memory give the run's tables to 1e-10:
    # streaming the archives one layer at a time changes nothing.
    pair = project / "data/07_model_output/smollm2_135m/newsgroups20"
    (pair_table_path,) = (pair / "ntps_table.parquet").glob("*/*.parquet")
    (pair_loss_path,) = (pair / "excess_loss_table.parquet").glob("*/*.parquet")
    (pooled_path,) = (project / "data/04_feature/smollm2_135m/newsgroups20/pooled_features.npz").glob("*/*.npz")
    parameters = load_parameters(project)
    parameters["ntps_scores"]["released_code"] = SMALL_RUN_PARAMS["ntps_scores.released_code"]
    with np.load(statistics_path) as archive, np.load(pooled_path) as pooled:
        arrays = dict(archive)
        in_memory = score_ntps(
            solve_eigen_subspaces(arrays, parameters["eigen_subspaces"]),
            arrays,
            dict(pooled),
            parameters["eigen_subspaces"],
            parameters["ntps_scores"],
            parameters["forward_pass"],
            model="smollm2_135m",
            dataset="newsgroups20",
        )
    pd.testing.assert_frame_equal(pd.read_parquet(pair_table_path), in_memory[0], rtol=0, atol=1e-10)
    pd.testing.assert_frame_equal(pd.read_parquet(pair_loss_path), in_memory[1], rtol=0, atol=1e-10)
    assert (project / "data/08_reporting/ntps_heatmaps.png").is_dir()
    (loss_path,) = (project / "data/08_reporting/excess_loss_table.parquet").glob("*/excess_loss_table.parquet")
    losses = pd.read_parquet(loss_path)
    assert len(losses) == len(DEFAULT_DATASETS) * n_layers * hidden
    assert (losses["excess_loss"] >= -1e-9 * losses["explainable_label_variance"]).all()
    assert losses.loc[losses["k"] == hidden, "excess_loss"].abs().max() < 1e-8 * losses["explainable_label_variance"].max()
    (theorem_path,) = (project / "data/08_reporting/theorem2_summary.csv").glob("*/theorem2_summary.csv")
    assert len(pd.read_csv(theorem_path)) == len(DEFAULT_DATASETS) * n_layers

    (probes_path,) = (project / "data/08_reporting/probe_metrics.parquet").glob("*/probe_metrics.parquet")
    probes = pd.read_parquet(probes_path)
    assert set(probes["dataset"]) == DEFAULT_DATASETS and (probes["hidden_state"] == n_layers - 1).all()
    assert probes[["logistic_train_accuracy", "logistic_test_accuracy"]].stack().between(0, 1).all()
    assert probes[["ols_training_mse", "logme", "h_score", *REFERENCE_SCORES]].notna().all().all()
    (summary_path,) = (project / "data/08_reporting/correlation_summary.parquet").glob("*/correlation_summary.parquet")
    summary = pd.read_parquet(summary_path)
    scored = {f"ntps_{variant}" for variant in VARIANTS if variant != "released_code"}
    assert set(summary["score"]) == scored | set(REFERENCE_SCORES) and set(summary["statistic"]) == set(STATISTICS)
    # clothing_ratings and clothing_departments are views of one corpus: held out together too.
    assert set(summary["selection"]) == {"best_in_sample", "leave_one_dataset_out", "leave_one_corpus_out", "none"}
    assert (summary["n_datasets"] == len(DEFAULT_DATASETS)).all() and (summary["permutation"] == "exact 720").all()
    searched = summary.dropna(subset=["layer"])
    assert searched["layer"].between(0, n_layers - 2).all()  # embeddings through the penultimate layer
    (report_path,) = (project / "data/08_reporting/correlation_report.md").glob("*/correlation_report.md")
    assert "## smollm2_135m (6 datasets" in report_path.read_text()

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ntps").experiment_id])
    assert run.info.status == "FINISHED"
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "reports")}
    assert {f"reports/{name}" for name in REPORTS} <= artifacts
    assert any(name.startswith("correlation_metrics.spearman.smollm2_135m.") for name in run.data.metrics)
    signal_metrics = [name for name in run.data.metrics if name.startswith("ntps_summary_metrics.ntps_signal_")]
    assert len(signal_metrics) == len(DEFAULT_DATASETS)
    history = client.get_metric_history(run.info.run_id, signal_metrics[0])
    assert sorted(metric.step for metric in history) == list(range(n_layers))
    assert run.data.params["tokenization.max_tokens"] == "16"


NOTEBOOK_RUNNER = """
import json, sys
namespace = {}
for cell in json.load(open(sys.argv[1]))["cells"]:
    if cell["cell_type"] == "code":
        exec("".join(cell["source"]), namespace)
figure = namespace["figure"]
print("heatmaps", len(figure.axes), "summary rows", len(namespace["correlation_summary"]))
"""


def test_a_rerun_writes_new_versions_and_the_notebook_reads_the_latest(project, model_cache, four_layer_model):
    datasets = ["rotten_tomatoes", "election_tweets", "newsgroups20"]
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(four_layer_run(four_layer_model, datasets)))
    assert kedro_run(project, model_cache, {"ntps_scores.released_code": True}).returncode == 0
    (table_path,) = (project / "data/08_reporting/ntps_table.parquet").glob("*/ntps_table.parquet")
    table = pd.read_parquet(table_path)
    assert set(table["variant"]) == set(VARIANTS)
    n_layers, hidden = 5, 576  # the embeddings and 4 blocks
    for _, rows in table[table["variant"] == "released_code"].groupby("dataset"):
        # the released fractions of U's and V's ranks, on the paper's grid
        assert len(rows) == n_layers * len(RELEASED_FRACTIONS) and rows["on_paper_grid"].all()
        assert rows.groupby("layer")["k_fraction"].apply(lambda f: np.allclose(f, RELEASED_FRACTIONS)).all()
        assert (rows[["k", "v_columns"]].max(axis=1) <= rows["k_fraction"] * hidden).all()
        assert rows["ntps"].between(-1e-6, 1 + 1e-6).all()

    before = snapshot(project)
    second = kedro_run(project, model_cache, {"ntps_scores.released_code": True})
    assert second.returncode == 0, second.stderr[-4000:]
    (_, second_table_path) = sorted((project / "data/08_reporting/ntps_table.parquet").glob("*/ntps_table.parquet"))
    second_table = pd.read_parquet(second_table_path)
    assert len(second_table) == len(table) and set(second_table["variant"]) == set(table["variant"])
    after = snapshot(project)
    assert {path: after.get(path) for path in before} == before, "a rerun changed an earlier run's file"
    pair = "smollm2_4_layers/election_tweets"
    for relative in (
        "data/01_raw/rotten_tomatoes/labeled_texts.parquet",
        "data/02_intermediate/smollm2_4_layers/newsgroups20/tokenized_texts.parquet",
        f"data/04_feature/{pair}/layer_statistics.npz",
        f"data/04_feature/{pair}/pooled_features.npz",
        f"data/05_model_input/{pair}/eigen_subspaces.npz",
        f"data/07_model_output/{pair}/ntps_table.parquet",
        f"data/07_model_output/{pair}/excess_loss_table.parquet",
        f"data/07_model_output/{pair}/probe_metrics.parquet",
        *(f"data/08_reporting/{name}" for name in REPORTS),
    ):
        assert len(versions(project, relative)) == 2, relative
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ntps").experiment_id])
    assert len(runs) == 2 and all(run.info.status == "FINISHED" for run in runs)
    for run in runs:
        artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "reports")}
        assert {f"reports/{name}" for name in REPORTS} <= artifacts

    notebook = REPOSITORY / "notebooks" / "ntps_results.ipynb"
    result = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_RUNNER, str(notebook)],
        cwd=project,
        env={**offline_environment(), "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # 3 heatmaps and their colour bar; 4 targets x 3 statistics x 15 score rows (4 variants x 2
    # selections, 7 reference scores)
    assert "heatmaps 4 summary rows 180" in result.stdout


def test_the_study_environment_runs_end_to_end_on_few_texts_and_a_tiny_model(project, model_cache, tiny_model):
    """`kedro run --env study` with its 12 tasks, few texts and a tiny random Llama instead of the
    embedded model: the reports hold every task, the reference scores, the null and the verdicts."""
    study = yaml.safe_load((project / "conf/study/parameters.yml").read_text())
    study["run"]["models"] = ["tiny_llama"]
    study["models"] = {"tiny_llama": {"source": "local", "path": str(tiny_model)}}
    (project / "conf/study/parameters.yml").write_text(yaml.safe_dump(study))
    result = kedro_run(project, model_cache, {"correlation.permutations": 200}, extra_args=["--env", "study"])
    assert result.returncode == 0, result.stderr[-4000:]
    # 12 tasks, 10 forward passes (one progress bar each): the newsgroups views share one, the
    # clothing ratings and recommendations another.
    assert result.stderr.count("forward + statistics:   0%") == 10
    (table_path,) = (project / "data/08_reporting/ntps_table.parquet").glob("*/ntps_table.parquet")
    table = pd.read_parquet(table_path)
    assert set(table["dataset"]) == set(study["run"]["datasets"]) and "released_code" not in set(table["variant"])
    assert table.loc[table["variant"] == "signal", "null_mean"].notna().all()
    (summary_path,) = (project / "data/08_reporting/correlation_summary.parquet").glob("*/correlation_summary.parquet")
    summary = pd.read_parquet(summary_path)
    assert (summary["n_datasets"] == 12).all() and (summary["permutation"] == "random 200").all()
    assert set(summary["score_kind"]) == {"ntps", "peer", "trivial", "estimator"}
    report = next((project / "data/08_reporting/correlation_report.md").glob("*/*")).read_text()
    assert "## Is NTPS above its own shuffled-label null?" in report and "trivial baseline" in report


def test_the_paper_grid_environment_keeps_one_pair_of_large_archives_at_a_time(project, model_cache, tiny_model):
    """`kedro run --env paper_grid --runner=ntps.runners.DepthFirstRunner`, the README's grid
    command, with a tiny random Llama on the CPU and three embedded datasets for the paper's models
    and datasets: each pair's statistics and subspaces are removed before the next pair's forward
    pass, none is left at the end, and the tables and the pooled features are all there."""
    datasets = ["rotten_tomatoes", "election_tweets", "reuters_r8"]
    grid = yaml.safe_load((project / "conf/paper_grid/parameters.yml").read_text())
    grid["run"] = {"models": ["tiny_llama"], "datasets": datasets}
    grid["models"] = {"tiny_llama": {"source": "local", "path": str(tiny_model)}}
    grid["forward_pass"].update(device="cpu", dtype="float32")
    (project / "conf/paper_grid/parameters.yml").write_text(yaml.safe_dump(grid))
    result = kedro_run(project, model_cache, extra_args=["--env", "paper_grid", "--runner", "ntps.runners.DepthFirstRunner"])
    assert result.returncode == 0, result.stderr[-4000:]

    # The log in order: each pair's archives are removed before the next pair's forward pass runs.
    events = []
    for line in result.stdout.splitlines():
        for dataset in datasets:
            if "Running node: extract_hidden_features" in line and f"tiny_llama.{dataset}.tokenized_texts" in line:
                events.append(("forward", dataset))
            elif "Removing" in line and "remove_when_released" in line and f"/tiny_llama/{dataset}/" in line:
                events.append(("removed", dataset))
    forwards = [dataset for event, dataset in events if event == "forward"]
    assert sorted(forwards) == sorted(datasets), events
    for earlier, later in zip(forwards, forwards[1:]):
        removed_before = [d for event, d in events[: events.index(("forward", later))] if event == "removed"]
        assert removed_before.count(earlier) >= 2, events  # its statistics and its subspaces

    archives = [path for path in (project / "data").rglob("*.npz") if path.is_file()]
    assert archives and all(path.name == "pooled_features.npz" for path in archives), archives
    for dataset in datasets:
        assert list((project / f"data/04_feature/tiny_llama/{dataset}").glob("pooled_features.npz/*/pooled_features.npz"))
    (table_path,) = (project / "data/08_reporting/ntps_table.parquet").glob("*/ntps_table.parquet")
    assert set(pd.read_parquet(table_path)["dataset"]) == set(datasets)


@pytest.mark.end_to_end
def test_a_run_of_one_model_and_one_dataset_ends_with_its_report(project, model_cache, tiny_model):
    """The common case of a user's own task: one model, one dataset. No correlation across datasets
    is possible, and the run report still answers which layer serves the task."""
    (project / "conf/local/parameters.yml").write_text(
        yaml.safe_dump(local_model_run("tiny_llama", tiny_model, ["rotten_tomatoes"]))
    )
    result = kedro_run(project, model_cache)
    assert result.returncode == 0, result.stderr[-4000:]
    (report_path,) = (project / "data/08_reporting/run_report.html").glob("*/run_report.html")
    report = report_path.read_text()
    assert "<h3>tiny_llama / rotten_tomatoes</h3>" in report and report.count("class='pair'") == 1
    assert "is best:" in report or "No layer is clearly above chance" in report
    (choices_path,) = (project / "data/08_reporting/layer_choices.parquet").glob("*/layer_choices.parquet")
    assert set(pd.read_parquet(choices_path)["dataset"]) == {"rotten_tomatoes"}
    correlation = next((project / "data/08_reporting/correlation_report.md").glob("*/*")).read_text()
    assert "3 or more datasets" in correlation

"""benchmarks/ntps_benchmark.py measures on tiny sizes, records what it prints, and compares with a commit."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess

import pytest

from tests.conftest import REPOSITORY


@pytest.fixture
def ntps_benchmark(benchmark_script, monkeypatch, caplog):
    ntps_benchmark = benchmark_script("ntps_benchmark")
    # The script's lines go to a logger that does not propagate; caplog sees them through its handler.
    logger = logging.getLogger("ntps.benchmark")
    logger.addHandler(caplog.handler)
    yield ntps_benchmark
    logger.handlers.clear()


def worktrees() -> str:
    return subprocess.run(["git", "worktree", "list"], cwd=REPOSITORY, capture_output=True, text=True, check=True).stdout


def spied_worktrees(ntps_benchmark, monkeypatch, change=lambda worktree: None) -> list:
    """The worktrees the script checks out from now on, each changed by change() before it is used."""
    checked_out, seen = ntps_benchmark.baseline_worktree, []

    @contextlib.contextmanager
    def spied(full_hash):
        with checked_out(full_hash) as worktree:
            seen.append(worktree)
            assert str(worktree) in worktrees()
            change(worktree)
            yield worktree

    monkeypatch.setattr(ntps_benchmark, "baseline_worktree", spied)
    return seen


def removed(worktree) -> bool:
    return not worktree.exists() and str(worktree) not in worktrees()


def results(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


TINY_STAGES = ["--scores-hidden-sizes", "48", "--eigen-hidden-sizes", "48", "--repeats", "1"]


def test_measures_are_recorded_as_printed_and_a_later_run_keeps_those_it_does_not_repeat(ntps_benchmark, tmp_path, caplog):
    output = tmp_path / "results.json"
    ntps_benchmark.main(["--measure", "scores", "eigen", *TINY_STAGES, "--output", str(output)])
    recorded = results(output)
    assert "--measure scores eigen" in recorded["command"]
    assert {"cpu_count", "torch", "numpy", "platform"} <= set(recorded["machine"])
    scores, eigen = recorded["measures"]["scores"], recorded["measures"]["eigen"]
    assert [line for line in caplog.messages if " stage at d=48" in line] == scores["lines"] + eigen["lines"]
    assert scores["lines"][0].startswith("scores stage at d=48, per layer: paper + signal sweeps on the stored basis")
    layer = scores["values"]["d=48"]
    assert layer["stage_s"] > 0 and layer["extreme_eigenvalues_relative_difference"] < 1e-8
    assert layer["released_code_pinned_s"] > 0  # d <= 1024: the released procedure is timed alone
    eigen_layer = eigen["values"]["d=48"]
    parts = ("perception_closed_form_s", "autoregressive_s", "stored_form_s")
    assert eigen_layer["stage_s"] == pytest.approx(sum(eigen_layer[part] for part in parts))

    ntps_benchmark.main(["--measure", "sweep", "--hidden-size", "24", "--repeats", "1", "--output", str(output)])
    updated = results(output)
    assert updated["measures"]["scores"] == scores and updated["measures"]["eigen"] == eigen
    sweep = updated["measures"]["sweep"]
    assert "--measure sweep" in updated["command"] and sweep["command"] == updated["command"]
    assert sweep["values"]["max_abs_difference"] < 1e-10 and sweep["lines"][0].startswith("all-k sweep at d=24")


def test_a_baseline_commit_is_measured_in_a_worktree_that_is_removed_afterwards(ntps_benchmark, tmp_path, monkeypatch):
    seen = spied_worktrees(ntps_benchmark, monkeypatch)
    output = tmp_path / "results.json"
    # One BLAS thread in both runs: on a busy machine a thread pool's waits dwarf timings of milliseconds.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, "1")
    from threadpoolctl import threadpool_limits

    arguments = ["--measure", "eigen", "--eigen-hidden-sizes", "64", "--repeats", "5", "--baseline", "HEAD"]
    with threadpool_limits(1):
        ntps_benchmark.main([*arguments, "--output", str(output)])
    assert len(seen) == 1 and removed(seen[0])
    eigen = results(output)["measures"]["eigen"]
    baseline = eigen["baseline"]
    assert len(baseline["commit"]) == 40 and baseline["lines"][0].startswith("eigen stage at d=64")
    ratios = baseline["ratios"]["d=64"]
    assert set(ratios) == {"perception_closed_form_s", "autoregressive_s", "stored_form_s", "stage_s"}
    # The same code twice: the whole stage takes about as long in both runs.
    assert 1 / 3 < ratios["stage_s"] < 3
    assert eigen["lines"][-1].startswith(f"eigen at d=64, current / baseline {baseline['commit'][:12]}: ")


def test_a_baseline_that_lacks_a_measured_function_fails_naming_the_commit_and_the_function(
    ntps_benchmark, tmp_path, monkeypatch
):
    def without_autoregressive_subspace(worktree):
        module = worktree / "src" / "ntps" / "core" / "subspaces.py"
        module.write_text(module.read_text(encoding="utf-8") + "\ndel autoregressive_subspace\n", encoding="utf-8")

    seen = spied_worktrees(ntps_benchmark, monkeypatch, without_autoregressive_subspace)
    arguments = ["--measure", "eigen", "--eigen-hidden-sizes", "24", "--repeats", "1", "--baseline", "HEAD"]
    with pytest.raises(SystemExit) as failure:
        ntps_benchmark.main([*arguments, "--output", str(tmp_path / "results.json")])
    message = str(failure.value)
    assert message.startswith("--baseline HEAD (") and "autoregressive_subspace" in message and "--measure eigen" in message
    full_hash = message.removeprefix("--baseline HEAD (").split(")")[0]
    assert subprocess.run(["git", "cat-file", "-e", f"{full_hash}^{{commit}}"], cwd=REPOSITORY).returncode == 0
    assert len(seen) == 1 and removed(seen[0])


def test_the_model_measures_run_the_first_model_and_dataset_of_the_run(ntps_benchmark, tiny_model, tmp_path):
    from ntps.run_parameters import load_parameters

    parameters = load_parameters(REPOSITORY)
    parameters["models"]["tiny_llama"] = {"source": "local", "path": str(tiny_model)}
    parameters["run"] = {"models": ["tiny_llama"], "datasets": ["rotten_tomatoes"]}
    parameters["lora"] |= {"rank": 4, "alpha": 4, "steps": 2, "epochs": None, "batch_size": 4}
    parameters["training"]["batch_size"] = 4
    parameters_file = tmp_path / "parameters.json"
    parameters_file.write_text(json.dumps(parameters), encoding="utf-8")
    output = tmp_path / "results.json"
    texts = ["--texts", "8", "--precision-texts", "8", "--lora-texts", "8", "--max-tokens", "12", "--batch-size", "4"]
    measures = ["--measure", "statistics", "product-precision", "lora"]
    ntps_benchmark.main([*measures, *texts, "--repeats", "1", "--parameters", str(parameters_file), "--output", str(output)])
    recorded = results(output)["measures"]
    for measure in ("statistics", "product-precision", "lora"):
        assert "tiny_llama on rotten_tomatoes, all 3 hidden states, 8 texts" in recorded[measure]["lines"][0]
    statistics = recorded["statistics"]["values"]
    assert statistics["bare_forward_s"] > 0 and statistics["statistics_alone_s"] > 0 and statistics["statistics_flops"] > 0
    assert len(recorded["product-precision"]["lines"]) == 4
    assert 0 < recorded["product-precision"]["values"]["float32_cov1_relative_error"] < 1e-5
    lora = recorded["lora"]["values"]
    assert (lora["configured_steps"], lora["epoch_steps"]) == (2, 2) and lora["ntps_s"] > 0
    assert (lora["attention"], lora["other_attention"]) == ("eager", "sdpa") and lora["lora_per_step_other_attention_s"] > 0
    assert (lora["dropout"], lora["paper_dropout"]) == (0.0, 0.05) and lora["lora_per_step_paper_dropout_s"] > 0


def test_a_baseline_that_is_no_commit_fails_before_anything_is_measured(ntps_benchmark, tmp_path):
    output = tmp_path / "results.json"
    with pytest.raises(SystemExit, match="--baseline no-such-commit: not a commit of"):
        ntps_benchmark.main(["--measure", "eigen", "--baseline", "no-such-commit", "--output", str(output)])
    assert not output.exists()

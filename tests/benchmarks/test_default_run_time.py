"""benchmarks/default_run_time.py: each run in a fresh worktree of its commit, timed, with its stages read
from that worktree's own MLflow store, and the ratios to the first run."""

from __future__ import annotations

import argparse
import json
import subprocess

import pytest

from tests.conftest import REPOSITORY


@pytest.fixture
def run_time(benchmark_script):
    return benchmark_script("default_run_time")


def test_a_run_is_a_commit_and_a_forward_precision(run_time):
    assert run_time.parsed_run("abc123:float32") == ("abc123", "float32")
    assert run_time.parsed_run("abc123:default") == ("abc123", "default")
    assert run_time.parsed_run("HEAD~1:bfloat16") == ("HEAD~1", "bfloat16")
    for wrong in ("abc123", "abc123:float16", ":float32"):
        with pytest.raises(argparse.ArgumentTypeError, match="COMMIT:DTYPE"):
            run_time.parsed_run(wrong)


def test_each_run_gets_a_fresh_worktree_of_its_commit_and_its_own_stage_times(run_time, monkeypatch, tmp_path):
    import mlflow

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True).stdout.strip()
    seen, real_run = [], subprocess.run

    def fake_kedro_run(command, cwd, env=None, **options):
        """Stands in for `kedro run` (git runs for real): checks what it is handed and leaves an MLflow
        store as a run would."""
        if command[0] == "git":
            return real_run(command, cwd=cwd, env=env, **options)
        seen.append((cwd, command))
        assert env["PYTHONPATH"].split(":")[0] == str(cwd / "src") and env["DO_NOT_TRACK"] == "true"
        assert not (cwd / "mlflow.db").exists() and [path.name for path in (cwd / "data" / "08_reporting").iterdir()] == [
            ".gitkeep"
        ]
        dtype_seconds = 100.0 if "--params=forward_pass.dtype=bfloat16" in command else 200.0
        mlflow.set_tracking_uri(f"sqlite:///{cwd / 'mlflow.db'}")
        with mlflow.start_run():
            mlflow.log_metrics({"stage_seconds.hidden_statistics": dtype_seconds, "stage_seconds.probes": 1.0})
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(run_time.subprocess, "run", fake_kedro_run)
    output = tmp_path / "times.json"
    run_time.main(["--runs", f"{head}:default", "HEAD:bfloat16", "--output", str(output)])
    assert [command[-1] for _, command in seen] == ["--pipelines=ntps", "--params=forward_pass.dtype=bfloat16"]
    assert all(not worktree.exists() for worktree, _ in seen)  # removed after each run
    record = json.loads(output.read_text(encoding="utf-8"))
    assert [(run["commit"], run["dtype"]) for run in record["runs"]] == [(head, "default"), (head, "bfloat16")]
    assert [run["stage_seconds"]["hidden_statistics"] for run in record["runs"]] == [200.0, 100.0]
    assert all(run["seconds"] > 0 for run in record["runs"])
    assert len(record["lines"]) == 3 and record["lines"][-1].startswith(f"{head[:12]} bfloat16 / the first run: ")
    assert "hidden_statistics 200" in record["lines"][0] and "probes" not in record["lines"][0]  # stages under 5 s left out

"""How long the default `kedro run --pipelines=ntps` takes from a fresh clone, for commits side by side.

Each run checks its commit out into a temporary git worktree (the tracked files only: empty data
folders, no conf/local, its own MLflow store), runs the default there with that commit's code
(PYTHONPATH puts the worktree's `src` first; the installed dependencies are this environment's), and
records the wall-clock seconds of the `kedro run` command and each stage's seconds from the run's
MLflow record. The runs happen one after the other in the order given, so that they share the
machine's state of the moment; compare only runs of one invocation.

    .venv/bin/python benchmarks/default_run_time.py --runs <commit>:float32 HEAD:float32 HEAD:bfloat16

A run is COMMIT:DTYPE, DTYPE the forward pass's precision (`forward_pass.dtype`: float32, bfloat16 or
auto), or `default` for the commit's own default, run with no --params. Results go to
benchmarks/results/default_run_time.json, from which docs/benchmarks.md renders its block.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ntps_benchmark import baseline_worktree, commit_hash, configure_logging, git, machine

DEFAULT_OUTPUT = Path("benchmarks") / "results" / "default_run_time.json"
DTYPES = ("default", "float32", "bfloat16", "auto")

logger = logging.getLogger("ntps.benchmark.default_run_time")


def parsed_run(text: str) -> tuple[str, str]:
    """COMMIT:DTYPE -> (commit, dtype)."""
    commit, _, dtype = text.rpartition(":")
    if not commit or dtype not in DTYPES:
        raise argparse.ArgumentTypeError(f"a run is COMMIT:DTYPE with DTYPE one of {DTYPES}, got {text!r}")
    return commit, dtype


def stage_seconds(mlflow_database: Path) -> dict[str, float]:
    """The stage_seconds.<stage> metrics of the one run in an MLflow store."""
    with sqlite3.connect(mlflow_database) as connection:
        rows = connection.execute("SELECT key, value FROM metrics WHERE key LIKE 'stage_seconds.%'").fetchall()
    return {key.removeprefix("stage_seconds."): float(value) for key, value in sorted(rows)}


def timed_default_run(full_hash: str, dtype: str) -> dict:
    """The default run of the commit in a fresh worktree: wall-clock seconds, stages, exit status."""
    with baseline_worktree(full_hash) as worktree:
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(worktree / "src"), os.environ.get("PYTHONPATH")])),
            "DO_NOT_TRACK": "true",
            "HF_HUB_OFFLINE": "1",
        }
        command = [sys.executable, "-m", "kedro", "run", "--pipelines=ntps"]
        if dtype != "default":
            command.append(f"--params=forward_pass.dtype={dtype}")
        started = time.perf_counter()
        done = subprocess.run(command, cwd=worktree, env=environment, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{full_hash[:12]} {dtype}: kedro run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return {"seconds": seconds, "stage_seconds": stage_seconds(worktree / "mlflow.db")}


def described(run: dict) -> str:
    stages = ", ".join(f"{stage} {seconds:.0f}" for stage, seconds in run["stage_seconds"].items() if seconds >= 5)
    return (
        f"{run['commit'][:12]} {run['dtype']}: {run['seconds']:.0f} s ({run['seconds'] / 60:.1f} min); stages (s): {stages}"
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", type=parsed_run, required=True, help="COMMIT:DTYPE, run in this order")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parser().parse_args(argv)
    configure_logging()
    runs = [(commit, commit_hash(commit), dtype) for commit, dtype in arguments.runs]  # every commit checked first
    results = []
    for commit, full_hash, dtype in runs:
        logger.info("default run of %s (%s), forward pass in %s", commit, full_hash[:12], dtype)
        run = {"commit": full_hash, "subject": git("log", "-1", "--format=%s", full_hash), "dtype": dtype}
        run |= timed_default_run(full_hash, dtype)
        results.append(run)
        logger.info("%s", described(run))
    first = results[0]
    lines = [described(run) for run in results]
    lines += [
        f"{run['commit'][:12]} {run['dtype']} / the first run: {run['seconds'] / first['seconds']:.2f}"
        for run in results[1:]
    ]
    command = shlex.join([os.path.relpath(sys.executable), os.path.relpath(__file__), *argv])
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "machine": machine(), "runs": results, "lines": lines}
    arguments.output.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    for line in lines[len(results) :]:
        logger.info("%s", line)


if __name__ == "__main__":
    main()

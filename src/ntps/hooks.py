"""The project's hooks: the run's parameters for the pipeline builders, per-node and per-stage wall
time and peak memory logged to the run's MLflow run, and an interrupted run recorded as such."""

from __future__ import annotations

import logging
import resource
import signal
import sys
import threading
import time
from typing import Any

import mlflow
import pandas as pd
import torch
from kedro.framework.hooks import hook_impl
from kedro.pipeline.node import Node

from ntps.pipelines.fan_out import STAGE_TAG_PREFIX
from ntps.run_parameters import run_parameters, use_session_parameters

logger = logging.getLogger(__name__)


class RunParametersHook:
    """Hands the session's parameters (its environment's, with --params) to the pipeline builders.

    Kedro builds the pipelines at the first access of `kedro.framework.project.pipelines`, which a
    run makes after after_context_created; reading the raw parameters here (not context.params,
    whose validation would build the pipelines first) keeps that order.
    """

    @hook_impl
    def after_context_created(self, context) -> None:
        use_session_parameters(context.config_loader["parameters"])

    @hook_impl
    def before_pipeline_run(self) -> None:
        """The run's first lines: which models and datasets it loads, and from where."""
        from ntps.pipelines.run_selection import run_plan  # it imports transformers: not at the CLI's start-up

        for line in run_plan(run_parameters()):
            logger.info("this run loads %s", line)


def _peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def stage_of(node: Node) -> str:
    """The stage a node belongs to: its stage tag (fan_out.compose), else the pipeline folder its
    function comes from (ntps.pipelines.<stage>.nodes), else its function's module."""
    tags = sorted(tag for tag in node.tags if tag.startswith(STAGE_TAG_PREFIX))
    if tags:
        return tags[0].removeprefix(STAGE_TAG_PREFIX)
    module = getattr(node.func, "__module__", "") or ""
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[:2] == ["ntps", "pipelines"] else module


class ResourceUsageHook:
    """Times every node, from its start until its last output is saved, and records the process's
    peak RSS and, on a GPU, the peak CUDA memory allocated meanwhile; after the run, logs per-stage
    totals as MLflow metrics (stage_seconds.<stage>, stage_peak_rss_mb.<stage>,
    stage_peak_cuda_mb.<stage>) and the per-node table as the artifact reports/node_resources.csv.

    The saves count because an output may be computed as it is saved: the eigen stage returns a
    LayerStream, whose layers are solved while NpzDataset writes them."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._rows: dict[str, dict[str, Any]] = {}

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._started, self._rows = {}, {}

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._started[node.name] = time.perf_counter()

    def _record(self, node: Node) -> None:
        """The node's row as of now: a new row, or its row updated after one of its saves."""
        started = self._started.get(node.name)
        if started is None:
            return
        self._rows[node.name] = {
            "node": node.name,
            "stage": stage_of(node),
            "seconds": time.perf_counter() - started,
            "peak_rss_mb": _peak_rss_mb(),
            "peak_cuda_mb": torch.cuda.max_memory_allocated() / 1024**2 if torch.cuda.is_available() else 0.0,
        }

    @hook_impl
    def after_node_run(self, node: Node) -> None:
        self._record(node)

    @hook_impl
    def after_dataset_saved(self, node: Node) -> None:
        self._record(node)

    @hook_impl(tryfirst=True)  # before kedro-mlflow's own after_pipeline_run ends the MLflow run
    def after_pipeline_run(self) -> None:
        if not self._rows:
            return
        nodes = pd.DataFrame(list(self._rows.values()))
        stages = nodes.groupby("stage").agg(
            seconds=("seconds", "sum"), peak_rss_mb=("peak_rss_mb", "max"), peak_cuda_mb=("peak_cuda_mb", "max")
        )
        for stage, row in stages.iterrows():
            logger.info("stage %s: %.1f s, peak RSS %.0f MB, peak CUDA %.0f MB", stage, *row)
        if mlflow.active_run() is None:
            return
        for stage, row in stages.iterrows():
            mlflow.log_metrics(
                {
                    f"stage_seconds.{stage}": float(row["seconds"]),
                    f"stage_peak_rss_mb.{stage}": float(row["peak_rss_mb"]),
                    f"stage_peak_cuda_mb.{stage}": float(row["peak_cuda_mb"]),
                }
            )
        mlflow.log_text(nodes.to_csv(index=False), "reports/node_resources.csv")


class InterruptedRunHook:
    """A run stopped by Ctrl-C or SIGTERM is recorded in MLflow as KILLED. Kedro hands only exceptions
    to on_pipeline_error, which kedro-mlflow marks FAILED; an interrupt passes it by, and MLflow's exit
    handler would then end the open run as FINISHED."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    @hook_impl
    def before_pipeline_run(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in self.SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._interrupted)

    def _interrupted(self, signum: int, frame) -> None:
        run = mlflow.active_run()
        if run is not None:
            logger.warning(
                "run interrupted (%s): MLflow run %s ends as KILLED", signal.Signals(signum).name, run.info.run_id
            )
            mlflow.end_run(status="KILLED")
        self._restore()
        raise KeyboardInterrupt

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._restore()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._restore()

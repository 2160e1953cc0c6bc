"""ntps.hooks: a node's time runs until its outputs are saved; an interrupted run is recorded as killed."""

from __future__ import annotations

import os
import signal
import time

import mlflow
import numpy as np
import pytest
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from ntps import hooks
from ntps.io import NpzDataset
from ntps.io.layer_stream import LayerStream


class FakeClock:
    """time.perf_counter for the hook, advanced by the work below instead of measured."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_a_node_whose_output_is_computed_as_it_is_saved_is_timed_until_the_save(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(hooks, "time", clock)

    def solve_lazily(n_layers: int) -> LayerStream:
        clock.now += 1.0  # the node's own work

        def layer(index: int) -> dict[str, np.ndarray]:
            clock.now += 5.0  # each layer's work, done while NpzDataset writes it
            return {"vectors": np.full((2, 2), index)}

        return LayerStream(n_layers, layer, description="test layers")

    def summarize(subspaces) -> float:
        clock.now += 2.0
        return float(subspaces["vectors"].sum())

    pipeline = Pipeline(
        [
            node(solve_lazily, "n_layers", "subspaces", name="solve", tags=["stage.eigen_subspaces"]),
            node(summarize, "subspaces", "summary", name="summarize", tags=["stage.ntps_scores"]),
        ]
    )
    catalog = DataCatalog(
        datasets={
            "n_layers": MemoryDataset(3),
            "subspaces": NpzDataset(filepath=str(tmp_path / "subspaces.npz")),
            "summary": MemoryDataset(),
        }
    )
    usage = hooks.ResourceUsageHook()
    hook_manager = _create_hook_manager()
    hook_manager.register(usage)
    usage.before_pipeline_run()
    SequentialRunner().run(pipeline, catalog, hook_manager=hook_manager)
    seconds = {name: row["seconds"] for name, row in usage._rows.items()}
    assert seconds == {"solve": 1.0 + 3 * 5.0, "summarize": 2.0}
    assert {row["stage"] for row in usage._rows.values()} == {"eigen_subspaces", "ntps_scores"}


def test_an_interrupted_run_is_recorded_as_killed_and_the_handlers_are_restored(tmp_path):
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    interrupted = hooks.InterruptedRunHook()
    before = signal.getsignal(signal.SIGINT)
    # An experiment of this store: one set by an earlier test in this worker does not exist here.
    run = mlflow.start_run(experiment_id=mlflow.create_experiment("interrupted"))
    try:
        interrupted.before_pipeline_run()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the signal arrives before this ends
        status = mlflow.get_run(run.info.run_id).info.status
    finally:
        if mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous_uri)
    assert status == "KILLED"
    assert signal.getsignal(signal.SIGINT) is before
    # A run that ends normally leaves the handlers as they were.
    interrupted.before_pipeline_run()
    interrupted.after_pipeline_run()
    assert signal.getsignal(signal.SIGINT) is before

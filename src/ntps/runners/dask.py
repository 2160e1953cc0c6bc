"""Run on a Dask cluster.

`kedro run --runner=ntps.runners.DaskRunner` submits every node to a dask.distributed cluster
(the scheduler at $DASK_SCHEDULER_ADDRESS, else a LocalCluster), each node depending on the
futures of the nodes that produce its inputs, as in Kedro's Dask deployment guide.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from kedro.framework.hooks.manager import _create_hook_manager, _register_hooks
from kedro.framework.project import settings
from kedro.pipeline.node import Node
from kedro.runner.runner import AbstractRunner
from kedro.runner.task import Task


def _run_node_on_worker(node: Node, catalog: Any, is_async: bool, run_id: str | None, *dependencies: Any) -> Node:
    """Runs one node on a Dask worker with the project's own hooks; plugin hooks (kedro-mlflow's)
    stay on the driver, which holds the MLflow run."""
    hook_manager = _create_hook_manager()
    _register_hooks(hook_manager, settings.HOOKS)
    Task(node=node, catalog=catalog, hook_manager=hook_manager, is_async=is_async, run_id=run_id).execute()
    return node


class DaskRunner(AbstractRunner):
    """Runs each node as a dask.distributed task; every intermediate must be a file-backed entry
    (workers share nothing but the file system), parameters travel with the catalog."""

    def __init__(self, is_async: bool = False, address: str | None = None, n_workers: int = 2):
        super().__init__(is_async=is_async)
        self._address = address or os.environ.get("DASK_SCHEDULER_ADDRESS")
        self._n_workers = int(os.environ.get("DASK_N_WORKERS", n_workers))

    def _get_executor(self, max_workers: int) -> None:
        return None

    def _run(self, pipeline: Any, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        from dask.distributed import Client, LocalCluster

        nodes: Iterable[Node] = pipeline.nodes
        self._validate_catalog(catalog)
        self._validate_nodes(nodes)
        cluster = None if self._address else LocalCluster(n_workers=self._n_workers, threads_per_worker=1, processes=True)
        with Client(self._address or cluster) as client:
            self._logger.info("Dask cluster: %s", client.dashboard_link)
            futures: dict[Node, Any] = {}
            dependencies = pipeline.node_dependencies
            for node in nodes:
                parents = [futures[parent] for parent in sorted(dependencies[node], key=lambda n: n.name)]
                futures[node] = client.submit(
                    _run_node_on_worker, node, catalog, self._is_async, run_id, *parents, pure=False, key=f"node-{node.name}"
                )
            for future in futures.values():
                node = future.result()
                self._logger.info("Completed node: %s", node.name)
        if cluster is not None:
            cluster.close()

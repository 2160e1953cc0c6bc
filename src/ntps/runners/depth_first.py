"""Run each chain of nodes to its end before starting the next.

Kedro's SequentialRunner runs a pipeline level by level: every pair's forward pass, then every
pair's eigen stage, and so on, so every pair's statistics exist at once. At paper scale that is
12 x 8.9 GB for one 8B model. `kedro run --runner=ntps.runners.DepthFirstRunner` runs the same
nodes in a depth-first topological order: once a node has run, the nodes it made ready run next,
so a pair's eigen and scores stages follow its forward pass before the next pair's begins. Kedro
releases a dataset once every node of the run that reads it has run, so memory and (with
NpzDataset's `remove_when_released`) disk hold one pair's intermediates at a time.
"""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node
from kedro.runner import SequentialRunner


def depth_first_order(pipeline: Pipeline) -> list[Node]:
    """A topological order of pipeline's nodes in which the nodes a node makes ready come next
    (Kahn's algorithm with a stack); among nodes made ready together, Kedro's order (by name)."""
    dependencies = {node: set(parents) for node, parents in pipeline.node_dependencies.items()}
    children: dict[Node, list[Node]] = {node: [] for node in dependencies}
    for node, parents in dependencies.items():
        for parent in parents:
            children[parent].append(node)
    stack = sorted((node for node, parents in dependencies.items() if not parents), reverse=True)
    order = []
    while stack:
        node = stack.pop()
        order.append(node)
        ready = []
        for child in children[node]:
            dependencies[child].discard(node)
            if not dependencies[child]:
                ready.append(child)
        stack.extend(sorted(ready, reverse=True))
    return order


class _DepthFirstPipeline(Pipeline):
    @property
    def nodes(self) -> list[Node]:
        return depth_first_order(self)


class DepthFirstRunner(SequentialRunner):
    """SequentialRunner in depth_first_order, with Kedro's releases of datasets no longer needed."""

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        super()._run(_DepthFirstPipeline(pipeline.nodes), catalog, hook_manager, run_id)

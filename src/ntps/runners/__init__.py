"""Runners for `kedro run --runner=...`: ntps.runners.ChangedNodesRunner reruns only what changed,
ntps.runners.DaskRunner runs on a Dask cluster, ntps.runners.DepthFirstRunner finishes one pair
before starting the next."""

from ntps.runners.changed_nodes import ChangedNodesRunner
from ntps.runners.dask import DaskRunner
from ntps.runners.depth_first import DepthFirstRunner

__all__ = ["ChangedNodesRunner", "DaskRunner", "DepthFirstRunner"]

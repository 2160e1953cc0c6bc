"""Runners for `kedro run --runner=...`: ntps.runners.ChangedNodesRunner reruns only what changed,
ntps.runners.DaskRunner runs on a Dask cluster."""

from ntps.runners.changed_nodes import ChangedNodesRunner
from ntps.runners.dask import DaskRunner

__all__ = ["ChangedNodesRunner", "DaskRunner"]

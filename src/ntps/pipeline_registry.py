"""Project pipelines: one per stage, and `ntps`, the whole DAG (also the default)."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    if "ntps" in pipelines:
        pipelines["__default__"] = pipelines["ntps"]
    return pipelines

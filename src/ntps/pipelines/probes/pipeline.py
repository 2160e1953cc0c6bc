"""Probe metrics for each model x dataset, on the features of the statistics' forward pass."""

from kedro.pipeline import Pipeline

from ntps.grid import node_stage

from .nodes import fit_probes


def create_pipeline(**kwargs) -> Pipeline:
    return node_stage(
        fit_probes, ["pooled_features", "params:probes"], "probe_metrics", parameters=("probes",), pass_pair=True
    ).pipeline()

"""Probe metrics for each model x dataset, on the features of the statistics' forward pass."""

from kedro.pipeline import Pipeline, node

from ntps.grid import bind, pipeline_per_pair

from .nodes import fit_probes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline_per_pair(
        lambda model, dataset: Pipeline(
            [
                node(
                    bind(fit_probes, model=model, dataset=dataset),
                    ["pooled_features", "params:probes"],
                    "probe_metrics",
                    name="fit_probes",
                )
            ]
        ),
        parameters=("probes",),
    )

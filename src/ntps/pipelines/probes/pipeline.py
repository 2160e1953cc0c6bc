"""Probe metrics for each model x dataset, on the features of the statistics' forward pass."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import bind, per_pair

from .nodes import fit_probes


def template(model: str, dataset: str) -> Pipeline:
    return Pipeline(
        [
            node(
                bind(fit_probes, model=model, dataset=dataset),
                ["pooled_features", "params:probes"],
                "probe_metrics",
                name="fit_probes",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_pair(template)

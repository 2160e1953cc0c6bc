"""Probe metrics for each model x dataset, on the features of the statistics' forward pass: the
probes of the selected hidden states, and a cheap probe on every pooled one."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import bind, per_pair

from .nodes import fit_probes, probe_every_layer


def template(model: str, dataset: str) -> Pipeline:
    return Pipeline(
        [
            node(
                bind(fit_probes, model=model, dataset=dataset),
                ["pooled_features", "params:probes"],
                "probe_metrics",
                name="fit_probes",
            ),
            node(
                bind(probe_every_layer, model=model, dataset=dataset),
                ["pooled_features", "probe_metrics", "params:probes"],
                "layer_probe_table",
                name="probe_every_layer",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_pair(template)

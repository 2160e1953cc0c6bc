"""NTPS and excess loss tables for each model x dataset."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import bind, per_pair

from .nodes import score_ntps


def template(model: str, dataset: str) -> Pipeline:
    return Pipeline(
        [
            node(
                bind(score_ntps, model=model, dataset=dataset),
                [
                    "eigen_subspaces",
                    "layer_statistics",
                    "pooled_features",
                    "params:eigen_subspaces",
                    "params:ntps_scores",
                    "params:forward_pass",
                ],
                ["ntps_table", "excess_loss_table"],
                name="score_ntps",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_pair(template)

"""NTPS tables for each model x dataset."""

from kedro.pipeline import Pipeline, node

from ntps.grid import bind, pipeline_per_pair

from .nodes import score_ntps


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline_per_pair(
        lambda model, dataset: Pipeline(
            [
                node(
                    bind(score_ntps, model=model, dataset=dataset),
                    ["eigen_subspaces", "params:ntps_scores"],
                    "ntps_table",
                    name="score_ntps",
                )
            ]
        ),
        parameters=("ntps_scores",),
    )

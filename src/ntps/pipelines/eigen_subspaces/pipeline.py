"""Eigen subspaces for each model x dataset."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import per_pair

from .nodes import solve_eigen_subspaces


def template(model: str, dataset: str) -> Pipeline:
    return Pipeline(
        [
            node(
                solve_eigen_subspaces,
                ["layer_statistics", "params:eigen_subspaces"],
                "eigen_subspaces",
                name="solve_eigen_subspaces",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_pair(template)

"""Eigen subspaces for each model x dataset."""

from kedro.pipeline import Pipeline, node

from ntps.grid import pipeline_per_pair

from .nodes import solve_eigen_subspaces


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline_per_pair(
        lambda model, dataset: Pipeline(
            [
                node(
                    solve_eigen_subspaces,
                    ["layer_statistics", "params:eigen_subspaces"],
                    "eigen_subspaces",
                    name="solve_eigen_subspaces",
                )
            ]
        ),
        parameters=("eigen_subspaces",),
    )

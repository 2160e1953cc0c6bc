"""Eigen subspaces for each model x dataset."""

from kedro.pipeline import Pipeline

from ntps.grid import node_per_pair

from .nodes import solve_eigen_subspaces


def create_pipeline(**kwargs) -> Pipeline:
    return node_per_pair(
        solve_eigen_subspaces,
        ["layer_statistics", "params:eigen_subspaces"],
        "eigen_subspaces",
        parameters=("eigen_subspaces",),
    )

"""Eigen subspaces for each model x dataset."""

from kedro.pipeline import Pipeline

from ntps.grid import PairStage, node_stage

from .nodes import solve_eigen_subspaces


def pair_stage() -> PairStage:
    return node_stage(
        solve_eigen_subspaces,
        ["layer_statistics", "params:eigen_subspaces"],
        "eigen_subspaces",
        parameters=("eigen_subspaces",),
    )


def create_pipeline(**kwargs) -> Pipeline:
    return pair_stage().pipeline()

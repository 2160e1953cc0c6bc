"""NTPS and excess loss tables for each model x dataset."""

from kedro.pipeline import Pipeline

from ntps.grid import PairStage, node_stage

from .nodes import score_ntps


def pair_stage() -> PairStage:
    return node_stage(
        score_ntps,
        ["eigen_subspaces", "layer_statistics", "params:eigen_subspaces", "params:ntps_scores"],
        ["ntps_table", "excess_loss_table"],
        parameters=("eigen_subspaces", "ntps_scores"),
        pass_pair=True,
    )


def create_pipeline(**kwargs) -> Pipeline:
    return pair_stage().pipeline()

"""NTPS tables for each model x dataset."""

from kedro.pipeline import Pipeline

from ntps.grid import node_per_pair

from .nodes import score_ntps


def create_pipeline(**kwargs) -> Pipeline:
    return node_per_pair(
        score_ntps, ["eigen_subspaces", "params:ntps_scores"], "ntps_table", parameters=("ntps_scores",), pass_pair=True
    )

"""`kedro run --pipeline=ntps`: every stage pipeline, joined by their catalog names.

A folder of its own because Kedro loads only the requested pipeline's folder.
"""

from kedro.pipeline import Pipeline

from ntps.pipelines import (
    correlation_reports,
    data_ingestion,
    eigen_subspaces,
    hidden_statistics,
    language_model,
    ntps_scores,
    probes,
    reporting,
    tokenization,
)

STAGES = (
    data_ingestion,
    language_model,
    tokenization,
    hidden_statistics,
    eigen_subspaces,
    ntps_scores,
    reporting,
    probes,
    correlation_reports,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([stage.create_pipeline() for stage in STAGES])

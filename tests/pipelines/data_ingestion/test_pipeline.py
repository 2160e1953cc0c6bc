"""The data_ingestion stage in memory: one sampled table per run dataset, in its namespace."""

from __future__ import annotations

from ntps.pipelines import data_ingestion
from tests.pipelines.conftest import DATASETS, build, run_in_memory


def test_each_run_dataset_is_sampled_into_its_own_namespace(stage_parameters):
    outputs = run_in_memory(build(data_ingestion, stage_parameters), stage_parameters, {})
    assert set(outputs) == {f"{dataset}.labeled_texts" for dataset in DATASETS}
    for dataset in DATASETS:
        texts = outputs[f"{dataset}.labeled_texts"]
        assert texts["split"].value_counts().to_dict() == {"train": 48, "test": 16}
        assert texts["text"].str.len().gt(0).all()
        # one id per label name, rising in sorted name order
        ids = texts.groupby("label")["label_id"]
        assert (ids.nunique() == 1).all() and len(ids) >= 2
        assert ids.first().sort_index().is_monotonic_increasing

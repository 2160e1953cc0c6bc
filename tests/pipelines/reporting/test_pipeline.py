"""The reporting stage in memory: every pair's tables combined, summarized and drawn."""

from __future__ import annotations

from ntps.pipelines import reporting
from tests.pipelines.conftest import DATASETS, MODEL, build, run_in_memory


def test_the_pairs_tables_are_combined_summarized_and_drawn(stage_parameters, stage_data):
    outputs = run_in_memory(build(reporting, stage_parameters), stage_parameters, stage_data)
    table = outputs["ntps_table"]
    assert len(table) == sum(len(stage_data[f"{MODEL}.{dataset}.ntps_table"]) for dataset in DATASETS)
    assert sorted(table["dataset"].unique()) == sorted(DATASETS)
    assert len(outputs["theorem2_summary"]) == len(DATASETS) * 3  # one row per pair and layer
    assert {key.rsplit(".", 1)[-1] for key in outputs["ntps_summary_metrics"]} == set(DATASETS)
    titled = [axis for axis in outputs["ntps_heatmaps"].axes if axis.get_title()]
    assert len(titled) == len(DATASETS) * table["variant"].nunique()
    # The shuffled-label null: one summary row per pair and variant with a null, one heatmap each.
    null_summary = outputs["label_null_summary"]
    assert len(null_summary) == len(DATASETS) * 3 and null_summary["share_above_null"].between(0, 1).all()
    titled = [axis for axis in outputs["ntps_null_heatmaps"].axes if axis.get_title()]
    assert len(titled) == len(DATASETS) * 3

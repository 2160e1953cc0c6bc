"""The correlation_reports stage in memory: NTPS of every pair against its probes, with the report."""

from __future__ import annotations

from ntps.core.correlation import STATISTICS
from ntps.core.ntps import VARIANTS
from ntps.pipelines import correlation_reports
from ntps.reports.correlation_study import REFERENCE_SCORES, TARGET_DIRECTIONS
from tests.pipelines.conftest import DATASETS, MODEL, build, run_in_memory


def test_the_pairs_probe_metrics_are_combined_and_correlated_with_every_score(stage_parameters, stage_data):
    outputs = run_in_memory(build(correlation_reports, stage_parameters), stage_parameters, stage_data)
    assert sorted(outputs["probe_metrics"]["dataset"]) == sorted(DATASETS)
    summary = outputs["correlation_summary"]
    # Every NTPS variant the scores stage wrote (conf/base leaves released_code out), and the references.
    scored = {variant for dataset in DATASETS for variant in stage_data[f"{MODEL}.{dataset}.ntps_table"]["variant"]}
    assert scored == set(VARIANTS) - {"released_code"}
    assert set(summary["score"]) == {f"ntps_{variant}" for variant in scored} | set(REFERENCE_SCORES)
    assert set(summary["statistic"]) == set(STATISTICS)
    assert (summary["n_datasets"] == len(DATASETS)).all() and (summary["model"] == MODEL).all()
    assert summary["r"].dropna().between(-1, 1).all()
    assert f"## {MODEL} ({len(DATASETS)} datasets" in outputs["correlation_report"]
    assert "## Is NTPS above its own shuffled-label null?" in outputs["correlation_report"]
    assert outputs["correlation_metrics"]
    defined = summary[summary["selection"] != "best_in_sample"].groupby("target")["r"].count()
    assert len(outputs["score_comparison"].axes) == (defined > 0).sum() * len(STATISTICS)
    assert (defined > 0).sum() <= len(TARGET_DIRECTIONS)

"""Probe metrics of every pair, their correlation with NTPS, and the reports, logged to MLflow."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.reporting.nodes import concatenate_tables
from ntps.pipelines.run_selection import run_selection
from ntps.reports.correlation_study import configuration_correlations, correlation_summary, markdown_report

from .nodes import (
    correlation_metrics,
    plot_correlation_heatmaps,
    plot_ntps_vs_probes,
    plot_scores_against_probes,
)


def create_pipeline(**kwargs) -> Pipeline:
    tables = [f"{model}.{dataset}.probe_metrics" for model, dataset in run_selection().pairs()]
    inputs = ["ntps_table", "probe_metrics", "params:correlation"]
    return Pipeline(
        [
            node(concatenate_tables, tables, "probe_metrics", name="combine_probe_metrics"),
            node(configuration_correlations, inputs, "ntps_probe_correlations", name="correlate_configurations"),
            node(correlation_summary, [*inputs, "params:datasets"], "correlation_summary", name="summarize_correlations"),
            node(
                markdown_report,
                ["correlation_summary", "probe_metrics", "label_null_summary"],
                "correlation_report",
                name="write_correlation_report",
            ),
            node(correlation_metrics, "correlation_summary", "correlation_metrics", name="log_correlation_metrics"),
            node(
                plot_ntps_vs_probes,
                ["ntps_table", "probe_metrics", "correlation_summary", "params:correlation"],
                "ntps_vs_probes_figure",
                name="plot_ntps_vs_probes",
            ),
            node(
                plot_correlation_heatmaps,
                ["ntps_probe_correlations", "correlation_summary"],
                "correlation_heatmaps",
                name="plot_correlation_heatmaps",
            ),
            node(plot_scores_against_probes, "correlation_summary", "score_comparison", name="plot_score_comparison"),
        ]
    )

"""The LoRA reports: every pair's results combined, the accuracy gains and their correlation with
NTPS (Figure 3), NTPS after LoRA (Table 2), training curves, a markdown report, MLflow metrics, and
the run report again with its answer to "is fine-tuning worth it?".

They read the run-level ntps_table and probe_metrics of the latest `--pipelines=ntps` run.
"""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.ntps_after_lora.pipeline import NAMESPACE
from ntps.pipelines.reporting.nodes import concatenate_tables
from ntps.pipelines.run_report.nodes import write_run_report_after_lora
from ntps.pipelines.run_selection import run_selection
from ntps.reports.lora_study import lora_markdown_report

from .nodes import (
    compare_ntps_after_lora,
    lora_metrics_for_mlflow,
    plot_ntps_change,
    plot_ntps_vs_gain,
    plot_scores_against_gain,
    plot_training_curves,
    summarize_gains,
)


def create_pipeline(**kwargs) -> Pipeline:
    pairs = run_selection().pairs()
    combined = {
        "lora_metrics": "lora_metrics",
        "lora_training_log": "lora_training_log",
        "ntps_table_after_lora": f"{NAMESPACE}.ntps_table",
    }
    return Pipeline(
        [
            *(
                node(
                    concatenate_tables,
                    [f"{model}.{dataset}.{name}" for model, dataset in pairs],
                    output,
                    name=f"combine_{output}",
                )
                for output, name in combined.items()
            ),
            node(
                summarize_gains,
                [
                    "lora_metrics",
                    "probe_metrics",
                    "layer_probe_table",
                    "ntps_table",
                    "params:correlation",
                    "params:datasets",
                ],
                ["lora_gains", "lora_gain_correlations"],
                name="summarize_gains",
            ),
            node(
                compare_ntps_after_lora,
                ["ntps_table", "ntps_table_after_lora", "params:correlation", "params:lora_report"],
                "ntps_change_after_lora",
                name="compare_ntps_after_lora",
            ),
            node(
                lora_markdown_report,
                ["lora_gains", "lora_gain_correlations", "ntps_change_after_lora"],
                "lora_report",
                name="write_lora_report",
            ),
            node(
                lora_metrics_for_mlflow,
                ["lora_gains", "lora_gain_correlations", "ntps_change_after_lora"],
                "lora_summary_metrics",
                name="log_lora_metrics",
            ),
            node(
                plot_ntps_vs_gain,
                ["ntps_table", "lora_gains", "lora_gain_correlations", "params:lora_report"],
                "ntps_vs_lora_gain_figure",
                name="plot_ntps_vs_gain",
            ),
            node(
                plot_scores_against_gain,
                "lora_gain_correlations",
                "gain_score_comparison",
                name="plot_gain_score_comparison",
            ),
            node(plot_ntps_change, "ntps_change_after_lora", "ntps_change_after_lora_figure", name="plot_ntps_change"),
            node(plot_training_curves, "lora_training_log", "lora_training_curves", name="plot_training_curves"),
            node(
                write_run_report_after_lora,
                ["layer_probe_table", "ntps_table", "correlation_summary", "lora_gains", "lora_gain_correlations"],
                ["run_report", "run_report_markdown"],
                name="write_run_report_after_lora",
            ),
        ]
    )

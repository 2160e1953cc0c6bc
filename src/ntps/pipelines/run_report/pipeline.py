"""The run report, for any number of pairs: the layer probes of every pair combined, each selector's
layer choice, and one self-contained HTML file (with a markdown twin), logged to MLflow."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.reporting.nodes import concatenate_tables
from ntps.pipelines.run_selection import run_selection

from .nodes import write_run_report


def create_pipeline(**kwargs) -> Pipeline:
    tables = [f"{model}.{dataset}.layer_probe_table" for model, dataset in run_selection().pairs()]
    return Pipeline(
        [
            node(concatenate_tables, tables, "layer_probe_table", name="combine_layer_probe_tables"),
            node(
                write_run_report,
                ["layer_probe_table", "ntps_table", "correlation_summary"],
                ["run_report", "run_report_markdown", "layer_choices", "selector_regret"],
                name="write_run_report",
            ),
        ]
    )

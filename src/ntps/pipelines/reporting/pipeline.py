"""Everything the run reports, logged to MLflow through kedro-mlflow datasets."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.run_selection import run_selection
from ntps.reports.label_null import label_null_summary

from .nodes import (
    concatenate_tables,
    plot_excess_loss,
    plot_ntps_heatmaps,
    plot_ntps_null_heatmaps,
    summarize_ntps,
    summarize_theorem2,
)


def create_pipeline(**kwargs) -> Pipeline:
    pairs = run_selection().pairs()
    return Pipeline(
        [
            node(
                concatenate_tables,
                [f"{model}.{dataset}.ntps_table" for model, dataset in pairs],
                "ntps_table",
                name="combine_ntps_tables",
            ),
            node(summarize_ntps, ["ntps_table", "params:reporting"], "ntps_summary_metrics", name="summarize_ntps"),
            node(plot_ntps_heatmaps, "ntps_table", "ntps_heatmaps", name="plot_ntps_heatmaps"),
            node(label_null_summary, "ntps_table", "label_null_summary", name="summarize_label_null"),
            node(plot_ntps_null_heatmaps, "ntps_table", "ntps_null_heatmaps", name="plot_ntps_null_heatmaps"),
            node(
                concatenate_tables,
                [f"{model}.{dataset}.excess_loss_table" for model, dataset in pairs],
                "excess_loss_table",
                name="combine_excess_loss_tables",
            ),
            node(summarize_theorem2, "excess_loss_table", "theorem2_summary", name="summarize_theorem2"),
            node(plot_excess_loss, "excess_loss_table", "excess_loss_figure", name="plot_excess_loss"),
        ]
    )

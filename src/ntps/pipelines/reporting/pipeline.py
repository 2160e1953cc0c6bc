"""Everything the run reports, logged to MLflow through kedro-mlflow datasets."""

from kedro.pipeline import Pipeline, node

from ntps.grid import configured_grid

from .nodes import concatenate_tables, plot_ntps_heatmaps, summarize_ntps


def create_pipeline(**kwargs) -> Pipeline:
    tables = [f"{model}.{dataset}.ntps_table" for model, dataset in configured_grid().pairs()]
    return Pipeline(
        [
            node(concatenate_tables, tables, "ntps_table", name="combine_ntps_tables"),
            node(summarize_ntps, ["ntps_table", "params:reporting"], "ntps_summary_metrics", name="summarize_ntps"),
            node(plot_ntps_heatmaps, "ntps_table", "ntps_heatmaps", name="plot_ntps_heatmaps"),
        ]
    )

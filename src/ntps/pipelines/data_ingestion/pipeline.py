"""One loading node per dataset, namespaced by the dataset's name."""

from kedro.pipeline import Pipeline, node

from ntps.grid import configured_grid, pipeline_per_entry

from .nodes import load_labeled_texts


def create_pipeline(**kwargs) -> Pipeline:
    template = Pipeline(
        [node(load_labeled_texts, ["params:dataset", "params:sampling"], "labeled_texts", name="load_labeled_texts")]
    )
    return pipeline_per_entry(template, "datasets", configured_grid().datasets, shared_parameters=("sampling",))

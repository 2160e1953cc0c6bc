"""One loading node per dataset, namespaced by the dataset's name."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import per_entry

from .nodes import load_labeled_texts


def template() -> Pipeline:
    return Pipeline(
        [node(load_labeled_texts, ["params:dataset", "params:sampling"], "labeled_texts", name="load_labeled_texts")]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_entry(template(), "datasets")

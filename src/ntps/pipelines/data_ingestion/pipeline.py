"""One loading node per dataset, namespaced by the dataset's name."""

from kedro.pipeline import Pipeline, node

from ntps.grid import configured_grid

from .nodes import load_labeled_texts


def create_pipeline(**kwargs) -> Pipeline:
    template = Pipeline(
        [node(load_labeled_texts, ["params:dataset", "params:sampling"], "labeled_texts", name="load_labeled_texts")]
    )
    return Pipeline(
        [
            Pipeline(
                template,
                namespace=dataset,
                parameters={"params:dataset": f"params:datasets.{dataset}", "params:sampling": "params:sampling"},
            )
            for dataset in configured_grid().datasets
        ]
    )

"""Per-layer statistics for each model x dataset."""

from kedro.pipeline import Pipeline, node

from ntps.grid import pipeline_per_pair

from .nodes import accumulate_hidden_statistics


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline_per_pair(
        lambda model, dataset: Pipeline(
            [
                node(
                    accumulate_hidden_statistics,
                    ["tokenized_texts", "language_model_card", "params:forward_pass"],
                    "layer_statistics",
                    name="accumulate_hidden_statistics",
                )
            ]
        ),
        shared_inputs={"language_model_card": "{model}.language_model_card"},
        parameters=("forward_pass",),
    )

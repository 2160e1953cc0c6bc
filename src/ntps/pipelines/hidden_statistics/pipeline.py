"""Per-layer statistics and pooled features for each model x dataset, from one forward pass."""

from kedro.pipeline import Pipeline, node

from ntps.grid import pipeline_per_pair

from .nodes import extract_hidden_features


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline_per_pair(
        lambda model, dataset: Pipeline(
            [
                node(
                    extract_hidden_features,
                    ["tokenized_texts", "language_model_card", "params:forward_pass"],
                    ["layer_statistics", "pooled_features"],
                    name="extract_hidden_features",
                )
            ]
        ),
        shared_inputs={"language_model_card": "{model}.language_model_card"},
        parameters=("forward_pass",),
    )

"""One preparation node per model, namespaced by the model's name."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import per_entry

from .nodes import prepare_language_model


def template() -> Pipeline:
    return Pipeline(
        [
            node(
                prepare_language_model,
                ["params:model", "params:model_cache_dir"],
                "language_model_card",
                name="prepare_language_model",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_entry(template(), "models")

"""One preparation node per model, namespaced by the model's name."""

from kedro.pipeline import Pipeline, node

from ntps.grid import configured_grid, pipeline_per_entry

from .nodes import prepare_language_model


def create_pipeline(**kwargs) -> Pipeline:
    template = Pipeline(
        [
            node(
                prepare_language_model,
                ["params:model", "params:model_cache_dir"],
                "language_model_card",
                name="prepare_language_model",
            )
        ]
    )
    return pipeline_per_entry(template, "models", configured_grid().models, shared_parameters=("model_cache_dir",))

"""One preparation node per model, namespaced by the model's name."""

from kedro.pipeline import Pipeline, node

from ntps.grid import configured_grid

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
    return Pipeline(
        [
            Pipeline(
                template,
                namespace=model,
                parameters={"params:model": f"params:models.{model}", "params:model_cache_dir": "params:model_cache_dir"},
            )
            for model in configured_grid().models
        ]
    )

"""LoRA fine-tuning per model x dataset, and the adapted model's card for the NTPS stages."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import bind, per_pair

from .nodes import adapted_language_model_card, fine_tune_lora


def template(model: str, dataset: str) -> Pipeline:
    return Pipeline(
        [
            node(
                bind(fine_tune_lora, model=model, dataset=dataset),
                ["tokenized_texts", "language_model_card", "params:training", "params:lora"],
                ["lora_adapter", "lora_metrics", "lora_training_log"],
                name="fine_tune_lora",
            ),
            node(
                adapted_language_model_card,
                ["language_model_card", "lora_adapter"],
                "adapted_language_model_card",
                name="adapted_language_model_card",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_pair(template)

"""LoRA fine-tuning per model x dataset, and the adapted model's card for the NTPS stages."""

from kedro.pipeline import Pipeline, node

from ntps.grid import PairStage, bind

from .nodes import adapted_language_model_card, fine_tune_lora


def fine_tuning(model: str, dataset: str) -> Pipeline:
    return Pipeline(
        [
            node(
                bind(fine_tune_lora, model=model, dataset=dataset),
                ["tokenized_texts", "language_model_card", "params:lora"],
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


def pair_stage() -> PairStage:
    return PairStage(fine_tuning, {"language_model_card": "{model}.language_model_card"}, ("lora",))


def create_pipeline(**kwargs) -> Pipeline:
    return pair_stage().pipeline()

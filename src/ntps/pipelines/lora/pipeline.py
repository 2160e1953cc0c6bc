"""LoRA fine-tuning per model x dataset (`kedro run --pipeline=lora`)."""

from kedro.pipeline import Pipeline

from ntps.grid import node_per_pair

from .nodes import fine_tune_lora


def create_pipeline(**kwargs) -> Pipeline:
    return node_per_pair(
        fine_tune_lora,
        ["tokenized_texts", "language_model_card", "params:lora"],
        ["lora_adapter", "lora_metrics"],
        shared_inputs={"language_model_card": "{model}.language_model_card"},
        parameters=("lora",),
        pass_pair=True,
    )

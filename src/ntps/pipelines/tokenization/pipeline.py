"""Tokenize each dataset with each model's tokenizer."""

from kedro.pipeline import Pipeline

from ntps.grid import PairStage, node_stage

from .nodes import tokenize_texts


def pair_stage() -> PairStage:
    return node_stage(
        tokenize_texts,
        ["labeled_texts", "language_model_card", "params:tokenization"],
        "tokenized_texts",
        shared_inputs={"labeled_texts": "{dataset}.labeled_texts", "language_model_card": "{model}.language_model_card"},
        parameters=("tokenization",),
    )


def create_pipeline(**kwargs) -> Pipeline:
    return pair_stage().pipeline()

"""Tokenize each dataset with each model's tokenizer."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import per_pair

from .nodes import tokenize_texts


def template(model: str, dataset: str) -> Pipeline:
    return Pipeline(
        [
            node(
                tokenize_texts,
                ["labeled_texts", "language_model_card", "params:tokenization"],
                "tokenized_texts",
                name="tokenize_texts",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_pair(template)

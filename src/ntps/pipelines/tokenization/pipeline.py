"""Tokenize each dataset with each model's tokenizer."""

from kedro.pipeline import Pipeline, node

from ntps.grid import pipeline_per_pair

from .nodes import tokenize_texts


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline_per_pair(
        lambda model, dataset: Pipeline(
            [
                node(
                    tokenize_texts,
                    ["labeled_texts", "language_model_card", "params:tokenization"],
                    "tokenized_texts",
                    name="tokenize_texts",
                )
            ]
        ),
        shared_inputs={"labeled_texts": "{dataset}.labeled_texts", "language_model_card": "{model}.language_model_card"},
        parameters=("tokenization",),
    )

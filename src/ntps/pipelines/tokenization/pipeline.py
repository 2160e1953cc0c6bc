"""Tokenize each dataset with each model's tokenizer, per model x text sample (as the forward pass
that follows, so that label views of the same texts keep whole namespaces)."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import per_text_sample

from .nodes import tokenize_label_views, tokenize_texts


def template(model: str, *datasets: str) -> Pipeline:
    """labeled_texts -> tokenized_texts for one dataset; "<view>.labeled_texts" ->
    "<view>.tokenized_texts" for each of several label views, in one node."""
    if len(datasets) == 1:
        inputs = ["labeled_texts", "language_model_card", "params:tokenization"]
        return Pipeline([node(tokenize_texts, inputs, "tokenized_texts", name="tokenize_texts")])
    return Pipeline(
        [
            node(
                tokenize_label_views,
                ["language_model_card", "params:tokenization", *(f"{view}.labeled_texts" for view in datasets)],
                [f"{view}.tokenized_texts" for view in datasets],
                name="tokenize_texts",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_text_sample(template)

"""The statistics, eigen subspace and NTPS stages, unchanged, on each pair's LoRA-adapted model
(paper, Appendix A.6), in namespace "<model>.<dataset>.after_lora".

They read the pair's tokenized texts and the adapted model's card; everything else they make
stays in the namespace, e.g. "<model>.<dataset>.after_lora.ntps_table". Only the scores are read
after LoRA, and they read the statistics' split alone, so the forward pass runs those texts only.
"""

from kedro.pipeline import Pipeline

from ntps.pipelines.eigen_subspaces import pipeline as eigen_subspaces
from ntps.pipelines.fan_out import per_pair
from ntps.pipelines.hidden_statistics import pipeline as hidden_statistics
from ntps.pipelines.ntps_scores import pipeline as ntps_scores

NAMESPACE = "after_lora"
ADAPTED_INPUTS = {
    "tokenized_texts": "{model}.{dataset}.tokenized_texts",
    "language_model_card": "{model}.{dataset}.adapted_language_model_card",
}


def template(model: str, dataset: str) -> Pipeline:
    return Pipeline(
        [
            hidden_statistics.template(model, dataset, statistics_split_only=True),
            eigen_subspaces.template(model, dataset),
            ntps_scores.template(model, dataset),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_pair(template, namespace=f"{{model}}.{{dataset}}.{NAMESPACE}", inputs=ADAPTED_INPUTS)

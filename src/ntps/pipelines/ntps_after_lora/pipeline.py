"""The statistics, eigen subspace and NTPS stages, unchanged, on each pair's LoRA-adapted model
(paper, Appendix A.6), in namespace "<model>.<dataset>.after_lora".

They read the pair's tokenized texts and the adapted model's card; everything else they make
stays in the namespace, e.g. "<model>.<dataset>.after_lora.ntps_table".
"""

from kedro.pipeline import Pipeline

from ntps.grid import configured_grid
from ntps.pipelines.eigen_subspaces import pipeline as eigen_subspaces
from ntps.pipelines.hidden_statistics import pipeline as hidden_statistics
from ntps.pipelines.ntps_scores import pipeline as ntps_scores

NAMESPACE = "after_lora"
ADAPTED_INPUTS = {
    "tokenized_texts": "{model}.{dataset}.tokenized_texts",
    "language_model_card": "{model}.{dataset}.adapted_language_model_card",
}


def create_pipeline(**kwargs) -> Pipeline:
    stages = [stage.pair_stage() for stage in (hidden_statistics, eigen_subspaces, ntps_scores)]
    return Pipeline(
        [
            stage.for_pair(model, dataset, namespace=f"{model}.{dataset}.{NAMESPACE}", inputs=ADAPTED_INPUTS)
            for model, dataset in configured_grid().pairs()
            for stage in stages
        ]
    )

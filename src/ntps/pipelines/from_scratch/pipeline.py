"""`kedro run --pipelines=from_scratch` (optional, after a `--pipelines=ntps` run): each model's
architecture trained from scratch on each dataset, and the linear-vs-full table (paper, Table 1)."""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import bind, per_pair
from ntps.pipelines.run_selection import run_selection

from .nodes import compare_linear_and_full, train_from_scratch


def template(model: str, dataset: str) -> Pipeline:
    return Pipeline(
        [
            node(
                bind(train_from_scratch, model=model, dataset=dataset),
                ["tokenized_texts", "language_model_card", "params:training", "params:from_scratch"],
                ["from_scratch_metrics", "from_scratch_training_log"],
                name="train_from_scratch",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    tables = [f"{model}.{dataset}.from_scratch_metrics" for model, dataset in run_selection().pairs()]
    return Pipeline(
        [
            per_pair(template),
            node(
                compare_linear_and_full,
                ["probe_metrics", *tables],
                ["linear_vs_full", "linear_vs_full_report"],
                name="compare_linear_and_full",
            ),
        ]
    )

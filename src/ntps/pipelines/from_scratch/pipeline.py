"""`kedro run --pipeline=from_scratch` (optional, after a `--pipeline=ntps` run): each model's
architecture trained from scratch on each dataset, and the linear-vs-full table (paper, Table 1)."""

from kedro.pipeline import Pipeline, node

from ntps.grid import configured_grid, node_stage

from .nodes import compare_linear_and_full, train_from_scratch


def create_pipeline(**kwargs) -> Pipeline:
    training = node_stage(
        train_from_scratch,
        ["tokenized_texts", "language_model_card", "params:from_scratch"],
        ["from_scratch_metrics", "from_scratch_training_log"],
        shared_inputs={"language_model_card": "{model}.language_model_card"},
        parameters=("from_scratch",),
        pass_pair=True,
    )
    tables = [f"{model}.{dataset}.from_scratch_metrics" for model, dataset in configured_grid().pairs()]
    return Pipeline(
        [
            training.pipeline(),
            node(
                compare_linear_and_full,
                ["probe_metrics", *tables],
                ["linear_vs_full", "linear_vs_full_report"],
                name="compare_linear_and_full",
            ),
        ]
    )

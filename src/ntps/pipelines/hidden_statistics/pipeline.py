"""Per-layer statistics and pooled features for each model x text sample, from one forward pass.

A text sample is one dataset, or several label views of the same texts (datasets whose entries
differ only in their labels, run_selection.LABEL_KEYS): only meanXY depends on the labels, so the views
share the pass and each still gets its own "<model>.<view>.layer_statistics" and
"<model>.<view>.pooled_features".

With forward_pass.shards = N > 1 (read from the run's parameters when pipelines are built, like run:),
each sample's texts are cut into N shards of whole batches, one node per shard (run them in parallel
with `--runner=ParallelRunner` or on a Dask cluster with `--runner=ntps.runners.DaskRunner`), and a
reduce node adds their sums.
"""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import bind, per_text_sample
from ntps.run_parameters import run_parameters

from .nodes import combine_shards, extract_hidden_features, extract_shard_features

OUTPUTS = ("layer_statistics", "pooled_features")


def template(model: str, *datasets: str, statistics_split_only: bool = False) -> Pipeline:
    """The pass over the texts of `datasets`: plain names for one dataset ("tokenized_texts" ->
    "layer_statistics", "pooled_features"), view-prefixed names ("<view>.tokenized_texts") for several.
    statistics_split_only: run and pool only the texts the statistics sum (forward_pass.split), for
    readers of the statistics alone (the stages after LoRA)."""

    def named(name: str, dataset: str) -> str:
        return name if len(datasets) == 1 else f"{dataset}.{name}"

    pass_inputs = ["language_model_card", "params:forward_pass", *(named("tokenized_texts", view) for view in datasets)]
    outputs = [named(name, view) for view in datasets for name in OUTPUTS]
    n_shards = int(run_parameters()["forward_pass"].get("shards", 1))
    only = {"statistics_split_only": statistics_split_only}
    if n_shards == 1:
        extract = bind(extract_hidden_features, **only)
        return Pipeline([node(extract, pass_inputs, outputs, name="extract_hidden_features")])
    shard_outputs = [[f"{name}_shard_{shard}" for name in OUTPUTS] for shard in range(n_shards)]
    return Pipeline(
        [
            node(
                bind(extract_shard_features, shard=shard, **only),
                pass_inputs,
                names,
                name=f"extract_shard_features_{shard}",
            )
            for shard, names in enumerate(shard_outputs)
        ]
        + [
            node(
                bind(combine_shards, n_views=len(datasets), **only),
                [*pass_inputs[1:], *(name for names in shard_outputs for name in names)],
                outputs,
                name="combine_shards",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_text_sample(template)

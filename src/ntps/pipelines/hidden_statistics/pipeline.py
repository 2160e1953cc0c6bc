"""Per-layer statistics and pooled features for each model x dataset, from one forward pass.

With forward_pass.shards = N > 1 (read from the run's parameters when pipelines are built, like run:),
each pair's texts are cut into N shards of whole batches, one node per shard (run them in parallel with
`--runner=ParallelRunner` or on a Dask cluster with `--runner=ntps.runners.DaskRunner`), and a
reduce node adds their sums.
"""

from kedro.pipeline import Pipeline, node

from ntps.pipelines.fan_out import bind, per_pair, run_parameters

from .nodes import combine_shards, extract_hidden_features, extract_shard_features

PASS_INPUTS = ["tokenized_texts", "language_model_card", "params:forward_pass"]


def template(model: str, dataset: str) -> Pipeline:
    n_shards = int(run_parameters()["forward_pass"].get("shards", 1))
    if n_shards == 1:
        return Pipeline(
            [
                node(
                    extract_hidden_features,
                    PASS_INPUTS,
                    ["layer_statistics", "pooled_features"],
                    name="extract_hidden_features",
                )
            ]
        )
    shard_outputs = [[f"layer_statistics_shard_{shard}", f"pooled_features_shard_{shard}"] for shard in range(n_shards)]
    return Pipeline(
        [
            node(bind(extract_shard_features, shard=shard), PASS_INPUTS, outputs, name=f"extract_shard_features_{shard}")
            for shard, outputs in enumerate(shard_outputs)
        ]
        + [
            node(
                combine_shards,
                ["tokenized_texts", "params:forward_pass", *(name for outputs in shard_outputs for name in outputs)],
                ["layer_statistics", "pooled_features"],
                name="combine_shards",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_pair(template)

"""Per-layer statistics and pooled features for each model x dataset, from one forward pass.

With forward_pass.shards = N > 1 (read from the run's parameters when pipelines are built, like run:),
each pair's texts are cut into N shards of whole batches, one node per shard (run them in parallel with
`--runner=ParallelRunner` or on a Dask cluster with `--runner=ntps.runners.DaskRunner`), and a
reduce node adds their sums.
"""

from kedro.pipeline import Pipeline, node

from ntps.grid import PairStage, bind, node_stage, run_parameters

from .nodes import combine_shards, extract_hidden_features, extract_shard_features


def sharded_pass(n_shards: int) -> Pipeline:
    shard_outputs = [[f"layer_statistics_shard_{shard}", f"pooled_features_shard_{shard}"] for shard in range(n_shards)]
    return Pipeline(
        [
            node(
                bind(extract_shard_features, shard=shard),
                ["tokenized_texts", "language_model_card", "params:forward_pass"],
                outputs,
                name=f"extract_shard_features_{shard}",
            )
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


def pair_stage() -> PairStage:
    n_shards = int(run_parameters()["forward_pass"].get("shards", 1))
    shared = {"language_model_card": "{model}.language_model_card"}
    if n_shards == 1:
        return node_stage(
            extract_hidden_features,
            ["tokenized_texts", "language_model_card", "params:forward_pass"],
            ["layer_statistics", "pooled_features"],
            shared_inputs=shared,
            parameters=("forward_pass",),
        )
    return PairStage(lambda model, dataset: sharded_pass(n_shards), shared, ("forward_pass",))


def create_pipeline(**kwargs) -> Pipeline:
    return pair_stage().pipeline()

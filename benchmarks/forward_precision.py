"""How far a bfloat16 forward pass moves every score against float32, end to end on a run.

Run the default twice, back to back, then compare:

    DO_NOT_TRACK=true HF_HUB_OFFLINE=1 .venv/bin/kedro run --pipelines=ntps --params forward_pass.dtype=float32
    DO_NOT_TRACK=true HF_HUB_OFFLINE=1 .venv/bin/kedro run --pipelines=ntps --params forward_pass.dtype=bfloat16
    .venv/bin/python benchmarks/forward_precision.py

By default the latest version of each table is the bfloat16 run's and the one before it the float32
run's, and the latest MLflow run of each forward precision holds their stage times; --float32-version,
--bfloat16-version (and --float32-probes, --bfloat16-probes) and --float32-run, --bfloat16-run name
others. Each score's change is set beside
its shuffled-label null's sd (the float32 table's null_sd) and beside the split-half variation that
`ntps_benchmark.py --measure product-precision` recorded; the probes' leave-one-out accuracies and
the layers the selectors choose are compared too. So is the verdict "above its null" (null_p_value at
most ABOVE_NULL_P) per layer and k: how often bfloat16 changes it, beside how often drawing the null's
shuffles again does (the float32 run's pairs rescored in memory from its stored statistics, subspaces
and pooled features with another ntps_scores.label_null.seed, --redrawn-seed). Results go to
benchmarks/results/forward_precision.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[1]
REPORTING = REPOSITORY / "data" / "08_reporting"
RESULTS = REPOSITORY / "benchmarks" / "results"
VARIANTS = ("paper", "signal", "label_variance_kept")
STAGES = ("hidden_statistics", "eigen_subspaces", "ntps_scores", "probes")
KEYS = ["model", "dataset", "variant", "layer", "k"]
# A score is "above its null" where its null_p_value is at most this: with the default 20 shuffles,
# no shuffle reached it.
ABOVE_NULL_P = 0.05

logger = logging.getLogger("forward_precision")


def versions(table: str) -> list[str]:
    """The saved versions of a reporting table, oldest first."""
    return sorted(path.name for path in (REPORTING / table).iterdir() if path.is_dir())


def load(table: str, version: str) -> pd.DataFrame:
    (path,) = (REPORTING / table / version).iterdir()
    return pd.read_parquet(path)


def stage_seconds(dtype: str, run_id: str | None) -> dict[str, float]:
    """The seconds of each stage of STAGES in an MLflow run: run_id's, else the latest finished run whose
    forward pass ran in dtype."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{REPOSITORY / 'mlflow.db'}")
    if run_id is None:
        experiment = client.get_experiment_by_name("ntps")
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"params.`forward_pass.dtype` = '{dtype}' and metrics.`stage_seconds.hidden_statistics` > 0",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            raise SystemExit(f"no finished MLflow run with forward_pass.dtype {dtype} recorded its stage times")
        run_id = runs[0].info.run_id
    metrics = client.get_run(run_id).data.metrics
    return {stage: metrics.get(f"stage_seconds.{stage}", float("nan")) for stage in STAGES} | {"run_id": run_id}


def redrawn_null_table(version: str, seed: int) -> pd.DataFrame:
    """The NTPS table of every pair of the run saved as `version`, rescored in memory from its stored
    statistics, subspaces and pooled features with the null's shuffles drawn from another seed (the
    released procedure left out: it has no null)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from ntps.pipelines.ntps_scores.nodes import score_ntps

    bootstrap_project(REPOSITORY)
    with KedroSession.create(project_path=REPOSITORY) as session:
        catalog = session.load_context().catalog
        run = load("ntps_table.parquet", version)[["model", "dataset"]].drop_duplicates()
        settings = {name: catalog.load(f"params:{name}") for name in ("eigen_subspaces", "ntps_scores", "forward_pass")}
        label_null = {**settings["ntps_scores"]["label_null"], "seed": seed}
        settings["ntps_scores"] = {**settings["ntps_scores"], "released_code": False, "label_null": label_null}
        tables = []
        for model, dataset in run.itertuples(index=False):
            inputs = [
                catalog.load(f"{model}.{dataset}.{name}", version=version)
                for name in ("eigen_subspaces", "layer_statistics", "pooled_features")
            ]
            table, _ = score_ntps(
                *inputs, settings["eigen_subspaces"], settings["ntps_scores"], settings["forward_pass"], model, dataset
            )
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


def above_null_changes(first: pd.DataFrame, second: pd.DataFrame) -> float:
    """The share of (pair, layer, k) with a null in both tables where one says "above its null" and the
    other does not."""
    joined = first.merge(second, on=KEYS, suffixes=("_first", "_second"))
    joined = joined[joined["null_p_value_first"].notna() & joined["null_p_value_second"].notna()]
    above = [joined[f"null_p_value_{side}"] <= ABOVE_NULL_P for side in ("first", "second")]
    return float((above[0] != above[1]).mean())


def compare(arguments: argparse.Namespace) -> dict:
    ntps_versions = versions("ntps_table.parquet")
    float32_version = arguments.float32_version or ntps_versions[-2]
    bfloat16_version = arguments.bfloat16_version or ntps_versions[-1]
    before, after = (
        table[table["variant"].isin(VARIANTS)]
        for table in (load("ntps_table.parquet", version) for version in (float32_version, bfloat16_version))
    )
    joined = before.merge(after, on=KEYS, suffixes=("_float32", "_bfloat16"))
    if len(joined) != len(before) or len(joined) != len(after):
        raise SystemExit(f"the two tables cover different rows ({len(before)}, {len(after)}, {len(joined)} in common)")
    halves = json.loads((RESULTS / "ntps_benchmark.json").read_text())["measures"]["product-precision"]["values"]
    redrawn = redrawn_null_table(float32_version, arguments.redrawn_seed)
    redrawn = redrawn[redrawn["variant"].isin(VARIANTS)]
    result = {
        "float32_version": float32_version,
        "bfloat16_version": bfloat16_version,
        "redrawn_seed": arguments.redrawn_seed,
        "variants": {},
    }
    for variant in VARIANTS:
        rows = joined[joined["variant"] == variant]

        def of_variant(table: pd.DataFrame, variant: str = variant) -> pd.DataFrame:
            return table[table["variant"] == variant]

        change = (rows["ntps_bfloat16"] - rows["ntps_float32"]).abs()
        grid = rows["on_paper_grid_float32"].to_numpy()
        in_null_sds = (change / rows["null_sd_float32"]).replace([np.inf, -np.inf], np.nan).dropna()
        result["variants"][variant] = {
            "max": float(change.max()),
            "median": float(change.median()),
            "grid_max": float(change[grid].max()),
            "grid_median": float(change[grid].median()),
            "median_in_null_sds": float(in_null_sds.median()) if len(in_null_sds) else float("nan"),
            "max_in_null_sds": float(in_null_sds.max()) if len(in_null_sds) else float("nan"),
            "split_half_median": halves[f"{variant}_halves_median"],
            "split_half_grid_max": halves[f"{variant}_halves_grid_max"],
            "share_over_one_null_sd": float((in_null_sds > 1).mean()) if len(in_null_sds) else float("nan"),
            "above_null_changed": above_null_changes(of_variant(before), of_variant(after)),
            "above_null_changed_by_redrawn_null": above_null_changes(of_variant(before), of_variant(redrawn)),
        }
    probe_versions = versions("layer_probe_table.parquet")
    probes = [
        load("layer_probe_table.parquet", version)
        for version in (arguments.float32_probes or probe_versions[-2], arguments.bfloat16_probes or probe_versions[-1])
    ]
    paired = probes[0].merge(probes[1], on=["model", "dataset", "hidden_state"], suffixes=("_float32", "_bfloat16"))
    best = [table[table["best_layer"]].set_index(["model", "dataset"])["hidden_state"] for table in probes]
    # float32's leave-one-out accuracy at its own best layer less at the layer bfloat16 chose.
    float32_accuracy = probes[0].set_index(["model", "dataset", "hidden_state"])["loo_accuracy"]
    regret = [float32_accuracy[(*pair, layer)] - float32_accuracy[(*pair, best[1][pair])] for pair, layer in best[0].items()]
    result["probes"] = {
        "loo_accuracy_max_change": float((paired["loo_accuracy_bfloat16"] - paired["loo_accuracy_float32"]).abs().max()),
        "test_accuracy_max_change": float((paired["test_accuracy_bfloat16"] - paired["test_accuracy_float32"]).abs().max()),
        "best_layer_same": int((best[0] == best[1].reindex(best[0].index)).sum()),
        "best_layer_max_regret": float(max(regret)),
        "pairs": len(best[0]),
    }
    result["stages"] = {
        "float32": stage_seconds("float32", arguments.float32_run),
        "bfloat16": stage_seconds("bfloat16", arguments.bfloat16_run),
    }
    return result


def lines(result: dict) -> list[str]:
    stages = result["stages"]
    out = [
        f"forward pass and statistics: {stages['float32']['hidden_statistics']:.0f} s in float32, "
        f"{stages['bfloat16']['hidden_statistics']:.0f} s in bfloat16 "
        f"({stages['float32']['hidden_statistics'] / stages['bfloat16']['hidden_statistics']:.2f}x faster)"
    ]
    for variant, values in result["variants"].items():
        out.append(
            f"  {variant}: bfloat16 moves the scores by up to {values['max']:.1e} (median {values['median']:.1e}; "
            f"on the paper's k grid up to {values['grid_max']:.1e}, median {values['grid_median']:.1e}), a median "
            f"{values['median_in_null_sds']:.2f} and at most {values['max_in_null_sds']:.1f} of the shuffled-label "
            f"null's sd (more than one sd at {100 * values['share_over_one_null_sd']:.2f} % of (layer, k)); the "
            f"split-half variation is a median {values['split_half_median']:.1e} (grid max "
            f"{values['split_half_grid_max']:.1e}); 'above its null' (p <= {ABOVE_NULL_P}) changes at "
            f"{100 * values['above_null_changed']:.1f} % of (layer, k), against "
            f"{100 * values['above_null_changed_by_redrawn_null']:.1f} % when the null's shuffles are drawn again"
        )
    probes = result["probes"]
    out.append(
        f"  probes: leave-one-out accuracy moves by up to {probes['loo_accuracy_max_change']:.3f}, held-out by up to "
        f"{probes['test_accuracy_max_change']:.3f}; the best layer is the same on {probes['best_layer_same']} of "
        f"{probes['pairs']} pairs, and bfloat16's choice is at most {probes['best_layer_max_regret']:.3f} below "
        "float32's best in float32's leave-one-out accuracy"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("float32-version", "bfloat16-version", "float32-probes", "bfloat16-probes", "float32-run", "bfloat16-run"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--redrawn-seed", type=int, default=1, help="the null's seed for the redrawn shuffles")
    arguments = parser.parse_args(argv)
    result = compare(arguments)
    result["lines"] = lines(result)
    for line in result["lines"]:
        logger.info("%s", line)
    (RESULTS / "forward_precision.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

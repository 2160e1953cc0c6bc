"""How far a bfloat16 forward pass moves every score against float32, end to end on a run.

Run the default twice, back to back, then compare:

    DO_NOT_TRACK=true HF_HUB_OFFLINE=1 .venv/bin/kedro run --pipelines=ntps
    DO_NOT_TRACK=true HF_HUB_OFFLINE=1 .venv/bin/kedro run --pipelines=ntps --params forward_pass.dtype=bfloat16
    .venv/bin/python benchmarks/forward_precision.py

By default the latest version of each table is the bfloat16 run's and the one before it the float32
run's, and the latest MLflow run of each forward precision holds their stage times; --float32-version,
--bfloat16-version (and --float32-probes, --bfloat16-probes) and --float32-run, --bfloat16-run name
others. Each score's change is set beside
its shuffled-label null's sd (the float32 table's null_sd) and beside the split-half variation that
`ntps_benchmark.py --measure product-precision` recorded; the probes' leave-one-out accuracies and
the layers the selectors choose are compared too. Results go to benchmarks/results/forward_precision.json.
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
    result = {"float32_version": float32_version, "bfloat16_version": bfloat16_version, "variants": {}}
    for variant in VARIANTS:
        rows = joined[joined["variant"] == variant]
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
        }
    probe_versions = versions("layer_probe_table.parquet")
    probes = [
        load("layer_probe_table.parquet", version)
        for version in (arguments.float32_probes or probe_versions[-2], arguments.bfloat16_probes or probe_versions[-1])
    ]
    paired = probes[0].merge(probes[1], on=["model", "dataset", "hidden_state"], suffixes=("_float32", "_bfloat16"))
    best = [table[table["best_layer"]].set_index(["model", "dataset"])["hidden_state"] for table in probes]
    result["probes"] = {
        "loo_accuracy_max_change": float((paired["loo_accuracy_bfloat16"] - paired["loo_accuracy_float32"]).abs().max()),
        "test_accuracy_max_change": float((paired["test_accuracy_bfloat16"] - paired["test_accuracy_float32"]).abs().max()),
        "best_layer_same": int((best[0] == best[1].reindex(best[0].index)).sum()),
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
            f"null's sd; the split-half variation is a median {values['split_half_median']:.1e} (grid max "
            f"{values['split_half_grid_max']:.1e})"
        )
    probes = result["probes"]
    out.append(
        f"  probes: leave-one-out accuracy moves by up to {probes['loo_accuracy_max_change']:.3f}, held-out by up to "
        f"{probes['test_accuracy_max_change']:.3f}; the best layer is the same on {probes['best_layer_same']} of "
        f"{probes['pairs']} pairs"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("float32-version", "bfloat16-version", "float32-probes", "bfloat16-probes", "float32-run", "bfloat16-run"):
        parser.add_argument(f"--{name}")
    arguments = parser.parse_args(argv)
    result = compare(arguments)
    result["lines"] = lines(result)
    for line in result["lines"]:
        logger.info("%s", line)
    (RESULTS / "forward_precision.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

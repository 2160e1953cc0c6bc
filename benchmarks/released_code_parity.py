"""This project's NTPS beside the authors' released procedure, on the latest `kedro run --pipelines=ntps`.

For each model x dataset of the run and a few layers and fractions f it prints, as markdown:
- `paper`: this project's Algorithm 1 (float64, ridge, top eigenvectors first) at k = round(f d);
- `released_code`: the released procedure (float32, whitening, eigh's ascending order) at
  int(f rank_U) columns of U and int(f rank_V) of V, computed from the statistics as the scores
  stage computes it with `ntps_scores.released_code: true` (the run need not have scored it);
- `released, top first`: the same procedure with the columns taken largest eigenvalue first.

Then how far `released_code` moves under float32 rounding alone: the same steps rerun on the same
statistics (a) with BLAS on all the machine's threads instead of the one the scores stage pins
(only the order of its sums changes) and (b) with each float32 statistic nudged by at most one
unit in the last place (seeded), the largest |difference| over pairs and layers, per fraction of
the 19, for both orders of the columns.

It reads, per pair of `--models` x `--datasets` (default: the project parameters' run.models and
run.datasets), the latest stored version of its statistics and of its NTPS table. A run loads the
latest statistics stored when it starts, so the statistics the table was scored from are the latest
version not newer than the table's; where those summed another number of training texts than the
latest, the two come from different runs and the script stops, saying which pair to rerun.

Both tables also go to one JSON file (`--output`, default benchmarks/results/released_code_parity.json),
from which docs/parity.md's tables `parity-released-vs-paper` and `parity-float32-spread` are
rendered: `command`, `machine` (scale_benchmark.machine_record, with the BLAS libraries and their
threads), `run` (the layers, fractions and seeds, and per pair the versions read and its number of
training texts) and `tables`:
- `released_vs_paper`: a record per table row: model, dataset, layer, score (`paper`,
  `released_code`, `released_top_first`), label (as the table prints it) and ntps, {f: value} with
  f written "0.05";
- `float32_spread`: a record per fraction f of the 19: k_fraction and the largest |change| for
  each column order and source, ascending_blas, ascending_nudge, top_first_blas, top_first_nudge.

Run from the project root after a `kedro run --pipelines=ntps`:
    .venv/bin/python benchmarks/released_code_parity.py   # --layers 0 15 29 --fractions 0.05 0.25 0.5 0.75 0.95
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scale_benchmark import add_output_argument, results_record, write_results
from threadpoolctl import threadpool_info

from ntps.core.released_code import RELEASED_FRACTIONS, released_alignment_scores
from ntps.core.statistics import LayerStatistics

logger = logging.getLogger("ntps.benchmark")

# The scores of the first table: their names in the records and their labels in the table.
SCORES = {
    "paper": "paper (k = round(f d))",
    "released_code": "released_code",
    "released_top_first": "released, top first",
}
# The columns of the second table: (top_first, name) per order of the columns, then the sources.
ORDERS = ((False, "ascending"), (True, "top_first"))
SOURCES = ("blas", "nudge")


def nudged(moments: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Each float32 statistic moved by -1, 0 or +1 unit in the last place, at random."""
    rng = np.random.default_rng(seed)
    result = {}
    for name, value in moments.items():
        value32 = value.astype(np.float32)
        steps = rng.integers(-1, 2, size=value32.shape)
        towards = np.where(steps > 0, np.inf, -np.inf).astype(np.float32)
        result[name] = np.where(steps == 0, value32, np.nextafter(value32, towards))
    return result


def rounding_spread(moments: dict[str, np.ndarray], top_first: bool, seeds: int) -> dict[str, np.ndarray]:
    """(19,) largest |change| of the released scores of one layer, per fraction, for each source
    of float32 rounding: "blas" (BLAS on all its threads instead of the pinned one) and "nudge"
    (statistics moved by an ulp)."""
    baseline = released_alignment_scores(**moments, top_first=top_first).scores
    all_threads = released_alignment_scores(**moments, top_first=top_first, blas_threads=None).scores
    nudges = [released_alignment_scores(**nudged(moments, seed), top_first=top_first).scores for seed in range(seeds)]
    return {
        "blas": np.abs(all_threads - baseline),
        "nudge": np.nanmax(np.abs(np.array(nudges) - baseline), axis=0),
    }


@dataclass(frozen=True)
class PairRun:
    """Which stored versions of one pair were read, and how many training texts their statistics sum."""

    model: str
    dataset: str
    statistics_version: str
    ntps_table_version: str
    n_texts: int


def stored_versions(catalog, name: str) -> list[str]:
    """The versions stored of a versioned catalog entry, oldest first (Kedro's versions are
    timestamps that sort as they were written)."""
    dataset = catalog.get(name)
    if dataset is None:
        raise SystemExit(f"the catalog has no entry {name!r}")
    return sorted(dataset.list_versions(full_path=False))


def read_pair(catalog, model: str, dataset: str) -> tuple[LayerStatistics, pd.DataFrame, PairRun]:
    """The latest statistics and NTPS table of one pair, after checking that the table was scored from
    statistics of as many training texts (the latest statistics version not newer than the table's)."""
    pair = f"{model}.{dataset}"
    statistics_versions = stored_versions(catalog, f"{pair}.layer_statistics")
    table_versions = stored_versions(catalog, f"{pair}.ntps_table")
    if not statistics_versions or not table_versions:
        missing = [
            name for name, versions in (("statistics", statistics_versions), ("NTPS table", table_versions)) if not versions
        ]
        raise SystemExit(f"{pair}: no {' and no '.join(missing)} stored; run `kedro run --pipelines=ntps` for it first")
    latest, table_version = statistics_versions[-1], table_versions[-1]
    statistics = LayerStatistics.from_arrays(catalog.load(f"{pair}.layer_statistics", version=latest))
    scored_from = [version for version in statistics_versions if version <= table_version]
    if not scored_from:
        raise SystemExit(
            f"{pair}: its NTPS table ({table_version}) is older than every stored version of its statistics "
            f"(the latest {latest}): they come from different runs; rerun the pair's scores"
        )
    if scored_from[-1] != latest:
        scored = LayerStatistics.from_arrays(catalog.load(f"{pair}.layer_statistics", version=scored_from[-1]))
        if scored.n_texts != statistics.n_texts:
            raise SystemExit(
                f"{pair}: the latest statistics ({latest}) sum {statistics.n_texts} training texts, the NTPS table "
                f"({table_version}) was scored from statistics of {scored.n_texts} ({scored_from[-1]}): they come "
                "from different runs; rerun the pair (`kedro run --pipelines=ntps`) or pass --datasets without it"
            )
    table = catalog.load(f"{pair}.ntps_table", version=table_version)
    return statistics, table, PairRun(model, dataset, latest, table_version, statistics.n_texts)


def released_vs_paper_rows(
    model: str,
    dataset: str,
    statistics: LayerStatistics,
    table: pd.DataFrame,
    layers: Sequence[int],
    fractions: Sequence[float],
) -> list[dict]:
    """The first table's rows of one pair: per layer (those the statistics have) and score, its NTPS at
    each fraction f; `paper` at k = round(f d), the released procedure at the nearest of its 19 fractions."""
    d = statistics.hidden_size
    released_positions = {f: int(np.argmin(np.abs(RELEASED_FRACTIONS - f))) for f in fractions}
    rows = []
    for layer in [layer for layer in layers if layer < statistics.n_layers]:
        at_layer = table[table["layer"] == layer]
        paper = at_layer[at_layer["variant"] == "paper"].set_index("k")["ntps"]
        moments = statistics.averaged(layer)
        released = released_alignment_scores(**moments).scores
        top_first = released_alignment_scores(**moments, top_first=True).scores
        values = {
            "paper": [paper[max(1, round(f * d))] for f in fractions],
            "released_code": [released[released_positions[f]] for f in fractions],
            "released_top_first": [top_first[released_positions[f]] for f in fractions],
        }
        for score, ntps in values.items():
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "layer": int(layer),
                    "score": score,
                    "label": SCORES[score],
                    "ntps": {f"{f:.2f}": float(value) for f, value in zip(fractions, ntps, strict=True)},
                }
            )
    return rows


def float32_spread(statistics: LayerStatistics, layers: Sequence[int], seeds: int) -> dict[str, np.ndarray]:
    """(19,) largest |change| of the released scores over these layers, per "<order>_<source>"."""
    spreads = {}
    for layer in [layer for layer in layers if layer < statistics.n_layers]:
        moments = statistics.averaged(layer)
        for top_first, order in ORDERS:
            for source, change in rounding_spread(moments, top_first, seeds).items():
                key = f"{order}_{source}"
                spreads[key] = np.fmax(spreads.get(key, np.zeros_like(change)), change)
    return spreads


def parity_tables(
    pairs: Iterable[tuple[str, str, LayerStatistics, pd.DataFrame]],
    layers: Sequence[int],
    fractions: Sequence[float],
    seeds: int,
) -> dict[str, list[dict]]:
    """Both tables' records from (model, dataset, statistics, NTPS table) per pair: `released_vs_paper`
    and `float32_spread`, the latter the largest change over every pair and layer."""
    rows, spreads = [], {}
    for model, dataset, statistics, table in pairs:
        rows += released_vs_paper_rows(model, dataset, statistics, table, layers, fractions)
        for key, change in float32_spread(statistics, layers, seeds).items():
            spreads[key] = np.fmax(spreads.get(key, np.zeros_like(change)), change)
    columns = [f"{order}_{source}" for _, order in ORDERS for source in SOURCES]
    spread_rows = [
        {"k_fraction": round(float(fraction), 2), **{key: float(spreads[key][index]) for key in columns if key in spreads}}
        for index, fraction in enumerate(RELEASED_FRACTIONS)
    ]
    return {"released_vs_paper": rows, "float32_spread": spread_rows}


def markdown(tables: dict[str, list[dict]], fractions: Sequence[float]) -> str:
    """Both tables as markdown, as the records give them."""
    keys = [f"{f:.2f}" for f in fractions]
    lines = [
        "| model / dataset | layer | score | " + " | ".join(f"f = {key}" for key in keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for row in tables["released_vs_paper"]:
        numbers = " | ".join(f"{row['ntps'][key]:.3f}" for key in keys)
        lines.append(f"| {row['model']} / {row['dataset']} | {row['layer']} | {row['label']} | {numbers} |")
    columns = [name for name in tables["float32_spread"][0] if name != "k_fraction"]
    lines += ["", "| f | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for row in tables["float32_spread"]:
        lines.append(f"| {row['k_fraction']:.2f} | " + " | ".join(f"{row[name]:.4f}" for name in columns) + " |")
    return "\n".join(lines)


def parity_record(
    catalog, models: Sequence[str], datasets: Sequence[str], layers: Sequence[int], fractions: Sequence[float], seeds: int
) -> dict:
    """`run` and `tables` of the results file, from the catalog's latest statistics and NTPS tables of
    every model x dataset (every pair checked before any is scored)."""
    read = [read_pair(catalog, model, dataset) for model in models for dataset in datasets]
    pairs = [(run.model, run.dataset, statistics, table) for statistics, table, run in read]
    return {
        "run": {
            "models": list(models),
            "datasets": list(datasets),
            "layers": list(layers),
            "fractions": list(fractions),
            "seeds": seeds,
            "pairs": [asdict(run) for _, _, run in read],
        },
        "tables": parity_tables(pairs, layers, fractions, seeds),
    }


def main(arguments: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 15, 29])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.25, 0.5, 0.75, 0.95])
    parser.add_argument("--seeds", type=int, default=2, help="nudged copies of the statistics per layer")
    parser.add_argument("--models", nargs="+", default=None, help="default: run.models of the project's parameters")
    parser.add_argument("--datasets", nargs="+", default=None, help="default: run.datasets of the project's parameters")
    add_output_argument(parser, "released_code_parity.json")
    options = parser.parse_args(arguments)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from ntps.run_parameters import load_parameters

    bootstrap_project(Path.cwd())
    run = load_parameters(Path.cwd())["run"]
    models, datasets = options.models or run["models"], options.datasets or run["datasets"]
    with KedroSession.create(project_path=Path.cwd()) as session:
        catalog = session.load_context().catalog
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        record = parity_record(catalog, models, datasets, options.layers, options.fractions, options.seeds)
    logger.info(markdown(record["tables"], options.fractions))
    header = results_record("cpu")
    # The blas column depends on the BLAS library and its threads.
    header["machine"]["blas"] = [
        {key: library.get(key) for key in ("internal_api", "version", "num_threads")} for library in threadpool_info()
    ]
    write_results(options.output, header | record)


if __name__ == "__main__":
    main()

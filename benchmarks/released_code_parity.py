"""This project's NTPS beside the authors' released procedure, on the latest `kedro run --pipelines=ntps`.

For each model x dataset of the run and a few layers and fractions f it prints, as markdown:
- `paper`: this project's Algorithm 1 (float64, ridge, top eigenvectors first) at k = round(f d);
- `released_code`: the released procedure (float32, whitening, eigh's ascending order) at
  int(f rank_U) columns of U and int(f rank_V) of V, as stored in the NTPS table;
- `released, top first`: the same procedure with the columns taken largest eigenvalue first.

Then how far `released_code` moves under float32 rounding alone: the same steps rerun on the same
statistics (a) with BLAS on all the machine's threads instead of the one the scores stage pins
(only the order of its sums changes) and (b) with each float32 statistic nudged by at most one
unit in the last place (seeded), the largest |difference| over layers and fractions per dataset,
for both orders of the columns.

Run from the project root after a `kedro run --pipelines=ntps`:
    .venv/bin/python benchmarks/released_code_parity.py   # --layers 0 15 29 --fractions 0.05 0.25 0.5 0.75 0.95
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np

from ntps.core.released_code import RELEASED_FRACTIONS, released_alignment_scores
from ntps.core.statistics import LayerStatistics

logger = logging.getLogger("ntps.benchmark")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 15, 29])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.25, 0.5, 0.75, 0.95])
    parser.add_argument("--seeds", type=int, default=2, help="nudged copies of the statistics per layer")
    arguments = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(Path.cwd())
    with KedroSession.create(project_path=Path.cwd()) as session:
        catalog = session.load_context().catalog
        ntps_table = catalog.load("ntps_table")
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        released_positions = {f: int(np.argmin(np.abs(RELEASED_FRACTIONS - f))) for f in arguments.fractions}
        header = "| model / dataset | layer | score | " + " | ".join(f"f = {f:.2f}" for f in arguments.fractions) + " |"
        lines = [header, "|---|---|---|" + "---|" * len(arguments.fractions)]
        spreads = {}  # (order, source) -> (19,) largest change over datasets and layers
        for (model, dataset), pair in ntps_table.groupby(["model", "dataset"], sort=True):
            statistics = LayerStatistics.from_arrays(catalog.load(f"{model}.{dataset}.layer_statistics"))
            d = statistics.hidden_size
            for layer in [layer for layer in arguments.layers if layer < statistics.n_layers]:
                moments = statistics.averaged(layer)
                at_layer = pair[pair["layer"] == layer]
                paper = at_layer[at_layer["variant"] == "paper"].set_index("k")["ntps"]
                stored = at_layer[at_layer["variant"] == "released_code"].set_index("k_fraction")
                top_first = released_alignment_scores(**moments, top_first=True)
                cells = {
                    "paper (k = round(f d))": [paper[max(1, round(f * d))] for f in arguments.fractions],
                    "released_code": [stored["ntps"].iloc[released_positions[f]] for f in arguments.fractions],
                    "released, top first": [top_first.scores[released_positions[f]] for f in arguments.fractions],
                }
                for score, values in cells.items():
                    numbers = " | ".join(f"{value:.3f}" for value in values)
                    lines.append(f"| {model} / {dataset} | {layer} | {score} | {numbers} |")
                for order, name in ((False, "ascending"), (True, "top first")):
                    for source, change in rounding_spread(moments, order, arguments.seeds).items():
                        key = (name, source)
                        spreads[key] = np.fmax(spreads.get(key, np.zeros_like(change)), change)
        logger.info("\n".join(lines))
        logger.info("\nlargest |change| under float32 rounding alone, over datasets and layers %s:", arguments.layers)
        keys = sorted(spreads)
        table = ["| f | " + " | ".join(f"{order}, {source}" for order, source in keys) + " |", "|---|" + "---|" * len(keys)]
        for index, fraction in enumerate(RELEASED_FRACTIONS):
            table.append(f"| {fraction:.2f} | " + " | ".join(f"{spreads[key][index]:.4f}" for key in keys) + " |")
        logger.info("\n".join(table))


if __name__ == "__main__":
    main()

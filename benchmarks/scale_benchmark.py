"""What one model x dataset pair costs at the paper's widths, measured per layer and extrapolated.

The paper's models are built from transformers config classes with random weights (no download):
cost does not depend on what the weights are, only on their shapes, so these numbers are the cost
of the real models' shapes, not of their scores. OpenELM's architecture is remote code; it is
stood in for by a Llama of the same width and depth (its layer-wise scaling of heads and MLP
widths is not modelled). On a CPU `--blocks` cuts each model to a few blocks; per-layer costs do
not depend on the number of blocks, and the extrapolation multiplies by the real depth.

Per width, one JSON line with, per layer (hidden state):
- forward_s_per_1k_tokens: the bare forward pass with hidden states, per block;
- statistics_s_per_1k_tokens: the float64 statistics of one hidden state (StatisticsAccumulator);
- eigen_s, scores_s: the eigen and scores stages on synthetic statistics of that width (the eigen
  stage with the stored form it saves, the scores stage on that form as it loads it,
  with the excess loss and Theorem 2's bounds, without the released code's procedure, which
  paper_grid leaves out, and without the shuffled-label null, which paper_grid computes on the
  last hidden state only);
- bytes_written: the statistics and subspace archives as the catalog stores them;
- peak_rss_mb, peak_cuda_mb: the process's peak so far;
- statistics_products_s_per_1k_tokens, float64_product_flops_per_s: the statistics' float64
  products alone, on random states of the timed batch's shape, and their rate;
- with `--products bfloat16x3` (or float32), statistics_bfloat16x3_s_per_1k_tokens and
  statistics_bfloat16x3_relative_error: the statistics with their products split into bfloat16
  pieces for the GPU's matrix units (core.statistics.PRODUCTS), and how far their cov0 and cov1
  are from float64's on the timed batch;
- on a GPU, u_v_max_relative_difference_vs_scipy and scores_max_abs_difference_vs_scipy: the
  torch.linalg path against scipy's on the CPU (agreement_with_scipy, outside the timings);
and `pair`: the same extrapolated to the model's real depth and `--tokens` training tokens;
`statistics_overhead`: the forward pass with every hidden state's statistics over the bare forward
pass at the real depth (1 + pair statistics_s / forward_s); `statistics_overhead_floor`: the same
with the statistics' float64 products alone, below which no float64 implementation gets;
`statistics_overhead_bfloat16x3`: the overhead with split bfloat16 products instead; and
`model_x_12_datasets`: twelve such pairs. A last line `grid` adds up the paper's 8 x 12 grid over
the widths measured (the models whose width was not measured are listed).

The same lines go to one JSON file (`--output`, default benchmarks/results/scale_benchmark.json), from
which docs/scaling.md's table `scaling-pair-cost` and the grid totals below it are rendered:
`command` (the command line as run), `machine` (machine_record: cores, CPU model, platform, library
versions, device), `wall_s` (the whole benchmark's seconds), `widths` (the per-width lines) and `grid`
(the grid line).

    .venv/bin/python benchmarks/scale_benchmark.py --blocks 1 --batch 4 --length 128   # CPU, one block each
    python benchmarks/scale_benchmark.py --device cuda --output benchmarks/results/scale_benchmark_gpu.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import torch
import transformers
from synthetic_layers import synthetic_statistics

from ntps.core.ntps import score_tables
from ntps.core.statistics import (
    PRODUCTS,
    LayerStatistics,
    StatisticsAccumulator,
    add_transition_products,
    transition_product_flops,
)
from ntps.core.subspaces import LayerSubspaces, layer_subspaces
from ntps.io.npz_dataset import NpzDataset

logger = logging.getLogger("ntps.scale_benchmark")


@dataclass(frozen=True)
class Architecture:
    """A paper model's shape: width, depth (blocks) and the config that builds it."""

    names: tuple[str, ...]  # the paper_grid models of this shape
    config_class: type
    hidden_size: int
    blocks: int
    intermediate_size: int
    heads: int
    kv_heads: int
    vocab_size: int


ARCHITECTURES = {
    896: Architecture(("qwen2_0_5b",), transformers.Qwen2Config, 896, 24, 4864, 14, 2, 151936),
    1280: Architecture(("openelm_270m",), transformers.LlamaConfig, 1280, 16, 5120, 20, 4, 32000),
    1536: Architecture(("qwen2_1_5b", "openelm_450m"), transformers.Qwen2Config, 1536, 28, 8960, 12, 2, 151936),
    2048: Architecture(("openelm_1_1b",), transformers.LlamaConfig, 2048, 28, 8192, 32, 8, 32000),
    3072: Architecture(("openelm_3b",), transformers.LlamaConfig, 3072, 36, 12288, 24, 6, 32000),
    3584: Architecture(("qwen2_7b",), transformers.Qwen2Config, 3584, 28, 18944, 28, 4, 152064),
    4096: Architecture(("llama3_8b",), transformers.LlamaConfig, 4096, 32, 14336, 32, 8, 128256),
}
PAPER_MODELS = tuple(name for architecture in ARCHITECTURES.values() for name in architecture.names)
PAPER_DATASETS = 12
SCORE_FRACTIONS = [round(0.05 * i, 2) for i in range(1, 20)]
RIDGE = 1e-6
RESULTS = Path(__file__).resolve().parent / "results"


def random_model(architecture: Architecture, blocks: int, device: str, dtype: torch.dtype) -> torch.nn.Module:
    config = architecture.config_class(
        hidden_size=architecture.hidden_size,
        intermediate_size=architecture.intermediate_size,
        num_hidden_layers=blocks,
        num_attention_heads=architecture.heads,
        num_key_value_heads=architecture.kv_heads,
        vocab_size=architecture.vocab_size,
    )
    # Built where it runs: 8B parameters initialized on the CPU would take longer than the measurement.
    with torch.device(device):
        return transformers.AutoModel.from_config(config, dtype=dtype).eval()


def peak_memory_mb(device: str) -> tuple[float, float | None]:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024**2 if sys.platform == "darwin" else 1024)
    cuda = torch.cuda.max_memory_allocated() / 1e6 if device.startswith("cuda") else None
    return rss, cuda


def timed(run, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def forward_and_statistics(
    model, architecture: Architecture, batch: int, length: int, device: str, products: Sequence[str] = ("float64",)
) -> dict[str, float]:
    """Seconds per 1,000 tokens of the bare forward pass per block, of one hidden state's float64
    statistics (best of 2 after a warm-up), and of their float64 products alone (best of 3), on
    one random batch; for each other way of computing the products (core.statistics.PRODUCTS) its
    statistics' seconds and how far its cov0 and cov1 are from float64's (relative to the largest
    entry)."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, architecture.vocab_size, (batch, length), generator=generator).to(device)
    mask = torch.ones(batch, length, dtype=torch.long, device=device)
    labels = torch.zeros(batch, dtype=torch.long)

    def forward():
        return model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states

    with torch.inference_mode():
        states = forward()
        forward_seconds = min(timed(forward, device) for _ in range(2))

        def accumulate(kind: str) -> StatisticsAccumulator:
            accumulator = StatisticsAccumulator(len(states), architecture.hidden_size, 2, device, products=kind)
            accumulator.update(states, mask, labels)
            return accumulator

        statistics = min(timed(lambda: accumulate("float64"), device) for _ in range(2))
        others = {}
        other_kinds = [kind for kind in products if kind != "float64"]
        exact = accumulate("float64").result() if other_kinds else None
        for kind in other_kinds:
            try:
                seconds = min(timed(lambda kind=kind: accumulate(kind), device) for _ in range(2))
            except RuntimeError as error:  # e.g. a torch without bfloat16 products to float32 here
                logger.warning("%s products failed, measured without them: %s", kind, error)
                others[f"statistics_{kind}_error"] = str(error)
                continue
            other = accumulate(kind).result()
            others[f"statistics_{kind}_s_per_1k_tokens"] = seconds * 1000 / (batch * length) / len(states)
            others[f"statistics_{kind}_relative_error"] = max(
                float(np.abs(getattr(other, name) - getattr(exact, name)).max() / np.abs(getattr(exact, name)).max())
                for name in ("cov0_upper", "cov1")
            )
        # The arithmetic: the statistics' float64 products alone, on random states of the batch's
        # shape (every pair of next tokens), against what they must cost (transition_product_flops).
        pairs = batch * (length - 1)
        d = architecture.hidden_size
        prefixes = torch.randn(pairs, d, dtype=torch.float64, device=device)
        sums = torch.zeros(d, d, dtype=torch.float64, device=device)
        products_s = min(timed(lambda: add_transition_products(sums, sums, prefixes, prefixes), device) for _ in range(3))
    product_flops = transition_product_flops(pairs, d)
    per_1k = 1000 / (batch * length)
    blocks = len(states) - 1
    return {
        "forward_s_per_1k_tokens": forward_seconds * per_1k / blocks,
        "statistics_s_per_1k_tokens": statistics * per_1k / len(states),
        "statistics_products_s_per_1k_tokens": products_s * per_1k,
        "float64_product_flops_per_s": product_flops / products_s,
        **others,
    }


def eigen_and_scores(hidden_size: int, device: str) -> dict[str, float]:
    """Seconds of the eigen and scores stages for one layer, and the bytes its archives take; on an
    accelerator also how far its results are from scipy's on the CPU (agreement_with_scipy)."""
    statistics = synthetic_statistics(hidden_size, n_classes=8, seed=0)
    linalg_device = torch.device(device) if device.startswith("cuda") else None
    # The eigen stage as the pipeline runs it: both pencils, then the stored form it saves (U in
    # float32, V as its float32 orthonormal factor), which the scores stage loads.
    start = time.perf_counter()
    solved = layer_subspaces(statistics, ridge=RIDGE, device=linalg_device)
    stored = solved.to_arrays(linalg_device)
    eigen = time.perf_counter() - start
    start = time.perf_counter()
    subspaces = LayerSubspaces.from_arrays(stored)
    scores, _ = score_tables(statistics, subspaces, RIDGE, SCORE_FRACTIONS, released_code=False, device=linalg_device)
    scores_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        written = 0
        for name, arrays in (("statistics", statistics.to_arrays()), ("subspaces", stored)):
            path = Path(folder) / f"{name}.npz"
            NpzDataset(filepath=str(path)).save(arrays)
            written += path.stat().st_size
    result = {"eigen_s": eigen, "scores_s": scores_s, "bytes_written": written}
    if linalg_device is not None:
        result |= agreement_with_scipy(statistics, solved, subspaces, scores)
    return result


def agreement_with_scipy(
    statistics: LayerStatistics, solved: LayerSubspaces, loaded: LayerSubspaces, scores: pd.DataFrame
) -> dict[str, float]:
    """How far another linear-algebra path (torch.linalg on a GPU) is from scipy on the CPU, for one
    layer: U and V in float64 (`solved`), each column up to its sign and relative to its norm, and
    every score of the NTPS table (`scores`) computed from the same stored form (`loaded`)."""
    on_cpu = layer_subspaces(statistics, ridge=RIDGE)
    column_difference = 0.0
    for name in ("perception_vectors", "autoregressive_vectors"):
        other, reference = getattr(solved, name)[0], getattr(on_cpu, name)[0]
        signs = np.sign((other * reference).sum(axis=0))
        relative = np.linalg.norm(other * signs - reference, axis=0) / np.linalg.norm(reference, axis=0)
        column_difference = max(column_difference, float(relative.max()))
    reference_scores, _ = score_tables(statistics, loaded, RIDGE, SCORE_FRACTIONS, released_code=False)
    return {
        "u_v_max_relative_difference_vs_scipy": column_difference,
        "scores_max_abs_difference_vs_scipy": float(np.nanmax(np.abs(scores["ntps"] - reference_scores["ntps"]))),
    }


def measure(
    architecture: Architecture,
    blocks: int,
    tokens: int,
    batch: int,
    length: int,
    device: str,
    dtype,
    products: Sequence[str] = ("float64",),
) -> dict:
    model = random_model(architecture, blocks, device, dtype)
    per_layer = forward_and_statistics(model, architecture, batch, length, device, products)
    del model
    per_layer |= eigen_and_scores(architecture.hidden_size, device)
    rss, cuda = peak_memory_mb(device)
    hidden_states = architecture.blocks + 1
    pair = {
        "forward_s": per_layer["forward_s_per_1k_tokens"] * architecture.blocks * tokens / 1000,
        "statistics_s": per_layer["statistics_s_per_1k_tokens"] * hidden_states * tokens / 1000,
        "eigen_s": per_layer["eigen_s"] * hidden_states,
        "scores_s": per_layer["scores_s"] * hidden_states,
        "bytes_written": per_layer["bytes_written"] * hidden_states,
    }
    pair["total_s"] = sum(value for name, value in pair.items() if name.endswith("_s"))
    # The two halves of a pair's time that docs/scaling.md tabulates (not part of total_s's sum above).
    pair["forward_and_statistics_s"] = pair["forward_s"] + pair["statistics_s"]
    pair["eigen_and_scores_s"] = pair["eigen_s"] + pair["scores_s"]
    return {
        "hidden_size": architecture.hidden_size,
        "models": list(architecture.names),
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "blocks_run": blocks,
        "blocks_real": architecture.blocks,
        "tokens": tokens,
        "batch": batch,
        "length": length,
        "per_layer": per_layer | {"peak_rss_mb": rss, "peak_cuda_mb": cuda},
        "pair": pair,
        "statistics_overhead": 1 + pair["statistics_s"] / pair["forward_s"],
        # What the float64 products alone would add: no float64 implementation gets below it.
        "statistics_overhead_floor": 1
        + per_layer["statistics_products_s_per_1k_tokens"] * hidden_states * tokens / 1000 / pair["forward_s"],
        # The same with the other ways of computing the products: the forward pass with them.
        **{
            f"statistics_overhead_{kind}": 1
            + per_layer[f"statistics_{kind}_s_per_1k_tokens"] * hidden_states * tokens / 1000 / pair["forward_s"]
            for kind in products
            if f"statistics_{kind}_s_per_1k_tokens" in per_layer
        },
        "model_x_12_datasets": {name: value * PAPER_DATASETS for name, value in pair.items()},
    }


def grid(results: list[dict]) -> dict:
    """The paper's 8 x 12 grid from the measured widths: each model counts once per dataset."""
    by_model = {name: result["pair"] for result in results for name in result["models"]}
    covered = [name for name in PAPER_MODELS if name in by_model]
    totals = {
        name: PAPER_DATASETS * sum(by_model[model][name] for model in covered) for name in ("total_s", "bytes_written")
    }
    missing = [name for name in PAPER_MODELS if name not in by_model]
    return {"grid": totals, "models_covered": covered, "models_not_measured": missing}


def main(arguments: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=sorted(ARCHITECTURES), choices=sorted(ARCHITECTURES))
    parser.add_argument("--blocks", type=int, default=None, help="blocks to build (default: the real depth)")
    parser.add_argument("--tokens", type=int, default=5000 * 128, help="training tokens of one pair (default 5,000 x 128)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128, help="tokens per text of the timed batch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="forward dtype (default bfloat16 on CUDA, float32 on the CPU)")
    parser.add_argument(
        "--products",
        nargs="+",
        default=["float64"],
        choices=PRODUCTS,
        help="ways of computing the statistics' products to time (core.statistics.PRODUCTS); float64 always",
    )
    add_output_argument(parser, "scale_benchmark.json")
    arguments = parser.parse_args(arguments)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    start = time.perf_counter()
    dtype = getattr(torch, arguments.dtype or ("bfloat16" if arguments.device.startswith("cuda") else "float32"))
    results = []
    for width in arguments.widths:
        architecture = ARCHITECTURES[width]
        blocks = arguments.blocks or architecture.blocks
        logger.info("d = %d, %d of %d blocks, %s %s", width, blocks, architecture.blocks, arguments.device, dtype)
        result = measure(
            architecture,
            blocks,
            arguments.tokens,
            arguments.batch,
            arguments.length,
            arguments.device,
            dtype,
            ["float64", *arguments.products],
        )
        results.append(result)
        emit(result)
    totals = grid(results)
    emit(totals)
    record = results_record(arguments.device) | {"wall_s": time.perf_counter() - start, "widths": results, "grid": totals}
    write_results(arguments.output, record)


def emit(result: dict) -> None:
    """One JSON line on stdout (the log goes to stderr)."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def cpu_model() -> str:
    """The CPU's model name where Linux tells it, else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_record(device: str) -> dict:
    """The machine a result was measured on: its cores (all, those this process may use, and torch's
    threads), CPU, platform, the versions of the libraries that do the arithmetic, and the device
    (with the GPU's name on CUDA)."""
    record = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "transformers": transformers.__version__,
        "device": device,
    }
    if device.startswith("cuda"):
        record["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return record


def add_output_argument(parser: argparse.ArgumentParser, file_name: str) -> None:
    """`--output`: the JSON results file, by default benchmarks/results/<file_name>."""
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS / file_name,
        help=f"the JSON results file (default benchmarks/results/{file_name})",
    )


def results_record(device: str) -> dict:
    """What the benchmarks' JSON results files start with: the command line as it was run (interpreter
    included) and the machine."""
    return {"command": shlex.join(sys.orig_argv), "machine": machine_record(device)}


def finite(value):
    """`value` with every NaN or infinity, however deep in lists and dicts, as None: the file stays
    strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def write_results(path: Path, record: dict) -> None:
    """The record as an indented JSON file at `path` (its folder made if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite(record), indent=1) + "\n", encoding="utf-8")
    logger.info("wrote %s", path)


if __name__ == "__main__":
    main()

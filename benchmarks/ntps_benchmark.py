"""Cost of the NTPS stages, as ratios measured in one run on this machine.

1. Statistics overhead: forward passes with hidden states plus float64 statistics for every layer,
   over the same forward passes alone (same batches, same model). Target: <= 1.3x.
2. All-k sweep: NTPS for every k from one QR and prefix sums, over Algorithm 1's pseudo-inverse
   per k, at d=1024 on synthetic statistics. Target: >= 50x faster, same numbers to 1e-10.

Run from the project root after the README's install command:
    .venv/bin/python benchmarks/ntps_benchmark.py
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
import torch

from ntps.core.scores import ntps_paper_all_k, ntps_score
from ntps.core.subspaces import autoregressive_subspace, perception_subspace
from ntps.extraction import extract_hidden_states, padded_batches, tokenize_labeled_texts
from ntps.grid import load_parameters
from ntps.sources.language_models import load_backbone, load_tokenizer, resolve_model_location
from ntps.sources.text_datasets import read_raw_dataset, select_labeled_texts

logger = logging.getLogger("ntps.benchmark")


def best_of(repeats: int, run) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def statistics_overhead(n_texts: int, max_tokens: int, batch_size: int, repeats: int) -> dict[str, float]:
    parameters = load_parameters()
    spec = parameters["models"]["smollm2_135m"]
    location = resolve_model_location(spec, parameters["model_cache_dir"])
    tokenizer = load_tokenizer(location, spec)
    model = load_backbone(location, spec, dtype="float32", device="cpu")
    dataset = parameters["datasets"]["rotten_tomatoes"]
    texts = select_labeled_texts(read_raw_dataset(dataset), dataset, {"seed": 0, "max_texts": {"train": n_texts}})
    tokenized = tokenize_labeled_texts(tokenizer, texts, max_tokens)

    def bare_forward():
        with torch.inference_mode():
            for _, input_ids, attention_mask, _ in padded_batches(tokenized, batch_size, tokenizer.pad_token_id):
                model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)

    def forward_with_statistics():
        extract_hidden_states(
            model, tokenized, n_classes=2, batch_size=batch_size, pad_token_id=tokenizer.pad_token_id, statistics_split=None
        )

    bare_forward()  # warm-up: first calls allocate and pick kernels
    bare, with_statistics = float("inf"), float("inf")
    for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
        bare = min(bare, best_of(1, bare_forward))
        with_statistics = min(with_statistics, best_of(1, forward_with_statistics))
    return {
        "texts": len(tokenized),
        "tokens": int(tokenized["n_tokens"].sum()),
        "bare_forward_s": bare,
        "forward_with_statistics_s": with_statistics,
        "ratio": with_statistics / bare,
    }


def synthetic_subspaces(hidden_size: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """U and V from random statistics with the shapes and conditioning of real ones."""
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.normal(size=hidden_size))
    samples = rng.normal(size=(4 * hidden_size, hidden_size)) * scales
    mean_xx = samples.T @ samples / len(samples)
    mean_xy = samples.T @ rng.normal(size=(len(samples), n_classes)) / len(samples)
    shifted = rng.normal(size=(4 * hidden_size, hidden_size)) * scales
    cov0 = mean_xx * 3.0
    cov1 = samples.T @ shifted / len(samples)
    u = perception_subspace(mean_xx, mean_xy, ridge=1e-6).eigenvectors
    v = autoregressive_subspace(cov0, cov1, ridge=1e-6).eigenvectors
    return u, v


def sweep_speedup(hidden_size: int, repeats: int) -> dict[str, float]:
    u, v = synthetic_subspaces(hidden_size, n_classes=8, seed=0)
    sweep = best_of(repeats, lambda: ntps_paper_all_k(u, v))
    start = time.perf_counter()
    per_k = np.array([ntps_score(u, v, k) for k in range(1, hidden_size + 1)])
    pseudo_inverse = time.perf_counter() - start
    return {
        "hidden_size": hidden_size,
        "all_k_sweep_s": sweep,
        "pinv_per_k_s": pseudo_inverse,
        "speedup": pseudo_inverse / sweep,
        "max_abs_difference": float(np.abs(ntps_paper_all_k(u, v) - per_k).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=96)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Importing Kedro installs its own logging configuration; the results get a handler of their own.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.info("torch %s, %d threads", torch.__version__, torch.get_num_threads())

    overhead = statistics_overhead(arguments.texts, arguments.max_tokens, arguments.batch_size, arguments.repeats)
    logger.info(
        "statistics, SmolLM2-135M, all 31 hidden states, %d texts / %d tokens: forward %.2f s, "
        "forward + statistics %.2f s -> %.2fx (target <= 1.3x)",
        overhead["texts"],
        overhead["tokens"],
        overhead["bare_forward_s"],
        overhead["forward_with_statistics_s"],
        overhead["ratio"],
    )
    speedup = sweep_speedup(arguments.hidden_size, arguments.repeats)
    logger.info(
        "all-k sweep at d=%d: sweep %.3f s, pinv per k %.1f s -> %.0fx faster (target >= 50x), "
        "max |difference| %.1e (target <= 1e-10)",
        speedup["hidden_size"],
        speedup["all_k_sweep_s"],
        speedup["pinv_per_k_s"],
        speedup["speedup"],
        speedup["max_abs_difference"],
    )


if __name__ == "__main__":
    main()

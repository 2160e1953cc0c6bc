"""Cost of the NTPS stages on this machine, in seconds and as ratios taken within one run.

Measures (`--measure`, default all seven):

statistics
    The forward pass with the float64 statistics of every hidden state, over the same forward pass
    alone (same batches, same model): what the statistics add to a forward pass. Beside it the floor
    the float64 products alone set (timed on random states of one average batch's shape), the
    statistics timed apart on the recorded hidden states, and the forward pass with float32 products
    (summed in float64), whose rounding `product-precision` measures.
sweep
    NTPS for every k from one QR and prefix sums, against Algorithm 1's pseudo-inverse for each k,
    on synthetic subspaces of width `--hidden-size`: how many times faster, and how far apart.
scores
    The scores stage per layer, on one synthetic layer per width of `--scores-hidden-sizes` and on
    the subspaces as the stage loads them (V as its stored float32 orthonormal factor): the paper
    and signal sweeps on the stored basis, the excess loss with Theorem 2's bounds, meanXX's extreme
    eigenvalues by Lanczos against every eigenvalue (the fallback the stage takes where Lanczos does
    not converge within its restarts, timed on a spectrum dense at its end), the released procedure
    on one BLAS thread per call side by side against all BLAS threads one call at a time, the whole
    stage without and with the released procedure, and the floor that the stage's dense algebra sets
    at this run's matrix-product rate.
eigen
    The eigen stage per layer, on one synthetic layer per width of `--eigen-hidden-sizes`: U in
    closed form, V's pencil, the stored form, and their sum.
product-precision
    How far float32 products and split bfloat16 products (bfloat16x3, what a GPU's matrix units run,
    emulated here) of cov0 and cov1 move the scores, against how far the scores move between two
    halves of the same texts (the sampling noise).
lora
    The NTPS stages (forward pass with statistics, eigen subspaces, the scores of every layer) over
    the LoRA stage (adapters and head trained with the project's `lora:` settings, then scored), on
    the same model and texts: the share of LoRA's time that NTPS takes, for the configured steps, for
    one epoch over the texts, and for the paper's 5000 steps projected from the time per step.
    Loading the model is timed apart and counted on neither side.
layer-probes
    The probe of every layer (the probes stage's `probes.layers`: a ridge probe chosen by exact
    leave-one-out, with the per-layer selectors) per layer, against the full probes a hidden state
    gets when `probes.hidden_states` names it (logistic probe, its cross-validation, k-NN, LogME,
    H-score), on synthetic pooled features of the default's size.

statistics, product-precision and lora run `--model` of the `models:` registry (default: the first of
`run.models`) on the training texts of `--dataset` of the `datasets:` registry (default: the first
of `run.datasets`), both loaded as the pipeline loads them, on the CPU. The parameters are the
project's (conf/base, then $KEDRO_ENV, default local), or those of `--parameters FILE` (JSON).

Every measure prints its lines through logging and records them, with its numbers, in `--output`
(JSON): {"command", "machine", "measures": {name: {"command", "lines", "values"}}}. Measures not run
keep their entries from an existing file, so `--measure eigen` updates only eigen's.

`--baseline COMMIT` measures the same again on that commit's code: it checks the commit out into a
temporary git worktree and runs this script in a subprocess whose PYTHONPATH puts the worktree's src
first, so that `ntps` is the commit's while the measuring code is this one; both runs read the same
parameters. The two runs happen back to back on the same machine, and every timing (a value whose
name ends in `_s`) gets its ratio current / baseline, printed and recorded in the measure's entry
under "baseline". The machine's speed drifts between runs, so only ratios from one invocation
compare; the ratio of scores' `matrix_product_s`, the same product in both runs, shows how far it
drifted between the two.

Run from the project root after the README's install command:
    .venv/bin/python benchmarks/ntps_benchmark.py                                    # all six
    .venv/bin/python benchmarks/ntps_benchmark.py --measure eigen                    # one of them
    .venv/bin/python benchmarks/ntps_benchmark.py --measure scores --baseline HEAD~1  # against a commit
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
import torch
from synthetic_layers import synthetic_statistics, synthetic_subspaces
from tqdm.auto import tqdm

# ntps is imported inside each measure, not here: a --baseline commit that lacks one measure's
# functions then fails that measure with the missing name, and the synthetic measures do without
# the seconds that transformers and peft take to import.

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = Path("benchmarks") / "results" / "ntps_benchmark.json"
MEASURES = ("statistics", "sweep", "scores", "eigen", "product-precision", "lora", "layer-probes")
MODEL_MEASURES = ("statistics", "product-precision", "lora")
# Measures that read the project's parameters (the model measures, and the probes' settings).
PARAMETER_MEASURES = (*MODEL_MEASURES, "layer-probes")
# Options that say where results go and which code runs, not what is measured: a baseline run gets
# its own values of them.
RUN_OPTIONS = ("baseline", "output", "parameters")

logger = logging.getLogger("ntps.benchmark")

Emit = Callable[..., None]  # emit(message, *fields): prints message % fields and records the line


def best_of(repeats: int, run) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def registry_entry(parameters: dict, registry: str, name: str) -> dict:
    if name not in parameters[registry]:
        raise SystemExit(f"'{name}' is not in the {registry}: registry; it holds {sorted(parameters[registry])}")
    return parameters[registry][name]


@dataclasses.dataclass
class ModelOnTexts:
    """A model of the registry loaded on the CPU, and training texts of a dataset of the registry
    tokenized by its tokenizer."""

    model: str
    dataset: str
    card: dict[str, Any]
    backbone: torch.nn.Module
    pad_token_id: int
    tokenized: Any  # pandas.DataFrame: input_ids, n_tokens, label_id, split

    @property
    def n_classes(self) -> int:
        """The largest label id + 1, as the pipeline counts them (ids follow the dataset's sorted labels)."""
        return int(self.tokenized["label_id"].max()) + 1

    @property
    def tokens(self) -> int:
        return int(self.tokenized["n_tokens"].sum())

    def described(self) -> str:
        return (
            f"{self.model} on {self.dataset}, all {self.card['n_hidden_states']} hidden states, "
            f"{len(self.tokenized)} texts / {self.tokens} tokens"
        )


def model_on_texts(parameters: dict, model: str, dataset: str, n_texts: int, max_tokens: int) -> ModelOnTexts:
    """As the pipeline's language_model, data_ingestion, tokenization and hidden_statistics nodes load
    them: the model's card, its tokenizer, at most n_texts training texts sampled with the project's
    `sampling:` seed, and the backbone in forward_pass.dtype."""
    from ntps.modeling.hidden_states import tokenize_labeled_texts
    from ntps.sources.language_models import load_backbone, load_tokenizer, model_card, resolve_model_location
    from ntps.sources.text_datasets import read_raw_dataset, select_labeled_texts

    spec = registry_entry(parameters, "models", model)
    card = model_card(resolve_model_location(spec, parameters["model_cache_dir"]), spec)
    tokenizer = load_tokenizer(card["location"], card["spec"])
    entry = registry_entry(parameters, "datasets", dataset)
    sampling = {**parameters["sampling"], "max_texts": {"train": n_texts}}
    texts = select_labeled_texts(read_raw_dataset(entry), entry, sampling)
    tokenized = tokenize_labeled_texts(tokenizer, texts[texts["split"] == "train"], max_tokens)
    backbone = load_backbone(card["location"], card["spec"], parameters["forward_pass"]["dtype"], "cpu")
    return ModelOnTexts(model, dataset, card, backbone, tokenizer.pad_token_id, tokenized)


# The products the statistics overhead is measured with: the default, and float32 and bfloat16x3
# products, the faster paths whose precision `--measure product-precision` measures.
OVERHEAD_PRODUCTS = ("float64", "float32", "bfloat16x3")
# The overhead the statistics may add to a bare forward pass, in whichever precision it runs.
OVERHEAD_LIMIT = 1.3


def statistics_overhead(setup: ModelOnTexts, batch_size: int, repeats: int) -> dict[str, float]:
    from ntps.core.statistics import StatisticsAccumulator, add_transition_products, transition_product_flops
    from ntps.modeling.hidden_states import extract_hidden_states, padded_batches

    model, tokenized = setup.backbone, setup.tokenized

    def hidden_states_of(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)
        return outputs.hidden_states

    def bare_forward():
        with torch.inference_mode():
            for _, input_ids, attention_mask, _ in padded_batches(tokenized, batch_size, setup.pad_token_id):
                hidden_states_of(input_ids, attention_mask)

    def forward_with_statistics(products: str):
        extract_hidden_states(
            model,
            tokenized,
            n_classes=setup.n_classes,
            batch_size=batch_size,
            pad_token_id=setup.pad_token_id,
            statistics_split=None,
            statistics_products=products,
        )

    bare_forward()  # warm-up: first calls allocate and pick kernels
    bare = float("inf")
    with_statistics = dict.fromkeys(OVERHEAD_PRODUCTS, float("inf"))
    for _ in range(repeats):  # interleaved, so drift in machine load hits all alike
        bare = min(bare, best_of(1, bare_forward))
        for products in OVERHEAD_PRODUCTS:
            timed = best_of(1, functools.partial(forward_with_statistics, products))
            with_statistics[products] = min(with_statistics[products], timed)
    # The arithmetic: the forward pass's work, about 2 x parameters per token (attention's T^2 terms
    # are small at these lengths and left out), against the statistics' float64 work per hidden
    # state and next-token pair (transition_product_flops).
    pairs = int((tokenized["n_tokens"] - 1).sum())
    d, hidden_states = setup.card["hidden_size"], setup.card["n_hidden_states"]
    statistics_flops = hidden_states * transition_product_flops(pairs, d)
    forward_flops = 2.0 * model.num_parameters() * setup.tokens
    # The statistics' products alone, on random states of one average batch's shape, as many as the
    # run computes: what float64 arithmetic costs here, apart from the casts, prefix sums and gathers.
    n_batches = -(-len(tokenized) // batch_size)
    prefixes = torch.randn(max(pairs // n_batches, 1), d, dtype=torch.float64)
    sums = torch.zeros(d, d, dtype=torch.float64)

    def products() -> None:
        for _ in range(hidden_states):
            add_transition_products(sums, sums, prefixes, prefixes)

    products_s = n_batches * best_of(repeats, products)
    # The statistics alone, timed apart from the forward pass on its recorded hidden states: the
    # ratio above is the difference of two forward passes' timings, which vary from run to run; this
    # one does not depend on them.
    with torch.inference_mode():
        recorded = [
            (hidden_states_of(input_ids, mask), mask, labels)
            for _, input_ids, mask, labels in padded_batches(tokenized, batch_size, setup.pad_token_id)
        ]

    def statistics_alone() -> None:
        accumulator = StatisticsAccumulator(hidden_states, d, setup.n_classes)
        for states, mask, labels in recorded:
            accumulator.update(states, mask, labels)
        accumulator.result()

    statistics_alone_s = best_of(repeats, statistics_alone)
    return {
        "texts": len(tokenized),
        "tokens": setup.tokens,
        "bare_forward_s": bare,
        "forward_with_statistics_s": with_statistics["float64"],
        "ratio": with_statistics["float64"] / bare,
        "forward_with_float32_products_s": with_statistics["float32"],
        "float32_products_ratio": with_statistics["float32"] / bare,
        "forward_with_bfloat16x3_products_s": with_statistics["bfloat16x3"],
        "bfloat16x3_products_ratio": with_statistics["bfloat16x3"] / bare,
        "forward_flops": forward_flops,
        "statistics_flops": statistics_flops,
        "forward_flop_rate": forward_flops / bare,
        "products_s": products_s,
        "statistics_alone_s": statistics_alone_s,
    }


def product_precision(setup: ModelOnTexts, batch_size: int, paper_fractions: list[float]) -> dict[str, float]:
    """Scores from float32 and from bfloat16x3 products of cov0 and cov1 (core.statistics.PRODUCTS,
    summed in float64) against float64 ones, and, as the yardstick, the scores of the even batches'
    texts against those of the odd batches', both float64."""
    from ntps.core.ntps import score_tables
    from ntps.core.statistics import StatisticsAccumulator
    from ntps.core.subspaces import layer_subspaces
    from ntps.modeling.hidden_states import padded_batches

    d, hidden_states = setup.card["hidden_size"], setup.card["n_hidden_states"]
    products = {kind: kind for kind in ("float64", "float32", "bfloat16x3")} | {"even": "float64", "odd": "float64"}
    accumulators = {
        name: StatisticsAccumulator(hidden_states, d, setup.n_classes, products=kind) for name, kind in products.items()
    }
    batches = list(padded_batches(setup.tokenized, batch_size, setup.pad_token_id))
    with torch.inference_mode():
        for batch, (_, input_ids, mask, labels) in enumerate(tqdm(batches, desc="forward + statistics", unit="batch")):
            states = setup.backbone(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
            for name in ("float64", "float32", "bfloat16x3", ("even", "odd")[batch % 2]):
                accumulators[name].update(states.hidden_states, mask, labels)
    statistics = {name: accumulator.result() for name, accumulator in accumulators.items()}
    tables = {
        name: score_tables(stats, layer_subspaces(stats, 1e-6), 1e-6, paper_fractions, released_code=False)[0]
        for name, stats in statistics.items()
    }
    result = {"texts": len(setup.tokenized), "tokens": setup.tokens}
    comparisons = {"float32": ("float64", "float32"), "bfloat16x3": ("float64", "bfloat16x3"), "halves": ("even", "odd")}
    for comparison in ("float32", "bfloat16x3"):
        for name in ("cov0_upper", "cov1"):
            exact, rounded = getattr(statistics["float64"], name), getattr(statistics[comparison], name)
            result[f"{comparison}_{name}_relative_error"] = float(np.abs(rounded - exact).max() / np.abs(exact).max())
    for variant in ("paper", "signal", "label_variance_kept"):
        for comparison, (first, second) in comparisons.items():
            rows = [table[table["variant"] == variant] for table in (tables[first], tables[second])]
            difference = np.abs(rows[0]["ntps"].to_numpy() - rows[1]["ntps"].to_numpy())
            on_grid = rows[0]["on_paper_grid"].to_numpy()
            result[f"{variant}_{comparison}_max"] = float(np.nanmax(difference))
            result[f"{variant}_{comparison}_grid_max"] = float(np.nanmax(difference[on_grid]))
            result[f"{variant}_{comparison}_median"] = float(np.nanmedian(difference))
    return result


# The released procedure's 19 float32 pseudo-inverses take minutes per layer beyond these widths:
# alone (twice: pinned and on all threads) up to the first, within the whole stage up to the second.
RELEASED_ALONE_UP_TO = 1024
STAGE_WITH_RELEASED_UP_TO = 2048


def scores_stage_cost(hidden_size: int, repeats: int) -> dict[str, float]:
    """Seconds per layer of the scores stage and its parts, on the subspaces as the stage loads them
    (the stored form: V as its float32 orthonormal factor, used as the basis it is)."""
    from ntps.core.excess_loss import Whitening, excess_loss_all_k, theorem2_bounds
    from ntps.core.linalg import NestedBasis, extreme_eigenvalues
    from ntps.core.ntps import ntps_paper_and_signal_all_k, score_tables
    from ntps.core.released_code import released_alignment_scores
    from ntps.core.subspaces import LayerSubspaces, layer_subspaces, regularized

    statistics = synthetic_statistics(hidden_size, n_classes=8, seed=0)
    subspaces = LayerSubspaces.from_arrays(layer_subspaces(statistics, ridge=1e-6).to_arrays())
    (u, v), rank = subspaces.vectors(0), int(subspaces.signal_ranks[0])
    moments = statistics.averaged(0)
    basis = NestedBasis(v)
    lower = Whitening.of(moments["mean_xx"], basis, 1e-6).lower
    fractions = [round(0.05 * i, 2) for i in range(1, 20)]
    lanczos = extreme_eigenvalues(lower)
    # A spectrum dense at its smallest end (meanXX of d texts): Lanczos stops after its restarts
    # (LANCZOS_RESTARTS) and every eigenvalue is computed instead.
    states = np.random.default_rng(1).normal(size=(hidden_size, hidden_size))
    dense_end = scipy.linalg.cholesky(states @ states.T / hidden_size + np.eye(hidden_size), lower=True)
    every_eigenvalue = scipy.linalg.eigvalsh(regularized(moments["mean_xx"], 1e-6))
    paper, _ = ntps_paper_and_signal_all_k(u, v, rank)

    def excess_loss_and_bounds() -> None:
        whitening = Whitening.of(moments["mean_xx"], basis, 1e-6)
        loss = excess_loss_all_k(moments["mean_xy"], whitening)
        theorem2_bounds(loss, subspaces.perception_values[0], u, paper, whitening)

    # The released procedure as the stage runs it (one BLAS thread per call, calls side by side)
    # against BLAS on all its threads, one call at a time.
    released_on_all_threads = released_pinned = stage_with_released_code = float("nan")
    if hidden_size <= RELEASED_ALONE_UP_TO:
        released_on_all_threads = best_of(repeats, lambda: released_alignment_scores(**moments, blas_threads=None))
        released_pinned = best_of(repeats, lambda: released_alignment_scores(**moments))
    if hidden_size <= STAGE_WITH_RELEASED_UP_TO:
        stage_with_released_code = best_of(1, lambda: score_tables(statistics, subspaces, 1e-6, fractions))
    return {
        "hidden_size": hidden_size,
        "sweeps_s": best_of(repeats, lambda: ntps_paper_and_signal_all_k(u, v, rank)),
        "excess_loss_s": best_of(repeats, excess_loss_and_bounds),
        # meanXX's extreme eigenvalues, for Theorem 2's constants: Lanczos on the Cholesky factor
        # against every eigenvalue of the formed matrix.
        "extreme_eigenvalues_lanczos_s": best_of(repeats, lambda: extreme_eigenvalues(lower)),
        "every_eigenvalue_s": best_of(repeats, lambda: scipy.linalg.eigvalsh(regularized(moments["mean_xx"], 1e-6))),
        "extreme_eigenvalues_dense_end_s": best_of(repeats, lambda: extreme_eigenvalues(dense_end)),
        "every_eigenvalue_dense_end_s": best_of(repeats, lambda: scipy.linalg.eigvalsh(dense_end @ dense_end.T)),
        "extreme_eigenvalues_relative_difference": float(
            max(abs(lanczos[0] / every_eigenvalue[0] - 1), abs(lanczos[1] / every_eigenvalue[-1] - 1))
        ),
        "stage_s": best_of(repeats, lambda: score_tables(statistics, subspaces, 1e-6, fractions, released_code=False)),
        "stage_with_released_code_s": stage_with_released_code,
        "released_code_all_blas_threads_s": released_on_all_threads,
        "released_code_pinned_s": released_pinned,
        # The stage's dense algebra per layer, V's stored basis being used as it is: Q^T U (2 d^3);
        # meanXX's Cholesky factor (d^3 / 3), L^T Q (d^3), its Gram matrix (d^3) and that one's
        # Cholesky factor (d^3 / 3): 14 d^3 / 3 floating-point operations, here timed at the rate of
        # a d x d matrix product (2 d^3 operations).
        "dense_algebra_flops": 14.0 / 3.0 * hidden_size**3,
        "matrix_product_s": best_of(repeats, lambda: u @ v),
    }


def eigen_stage_cost(hidden_size: int, repeats: int) -> dict[str, float]:
    """Seconds per layer of the eigen stage's parts on synthetic statistics: U in closed form, V's
    pencil, and the stored form the stage saves; the stage is their sum."""
    from ntps.core.subspaces import autoregressive_subspace, perception_subspace, solve_layer

    statistics = synthetic_statistics(hidden_size, n_classes=8, seed=0)
    moments = statistics.averaged(0)
    solved = solve_layer(statistics, 0, 1e-6)
    timings = {
        "perception_closed_form_s": best_of(
            repeats, lambda: perception_subspace(moments["mean_xx"], moments["mean_xy"], 1e-6)
        ),
        "autoregressive_s": best_of(repeats, lambda: autoregressive_subspace(moments["cov0"], moments["cov1"], 1e-6)),
        "stored_form_s": best_of(repeats, lambda: solved.stored_layer(0)),
    }
    return {"hidden_size": hidden_size, **timings, "stage_s": sum(timings.values())}


def pinv_ntps(u: np.ndarray, v: np.ndarray, k: int) -> float:
    """NTPS(U_k, V_k) for one k with Algorithm 1's projector V_k V_k^+."""
    projected = v[:, :k] @ (np.linalg.pinv(v[:, :k]) @ u[:, :k])
    return float((projected**2).sum() / (u[:, :k] ** 2).sum())


def sweep_speedup(hidden_size: int, repeats: int) -> dict[str, float]:
    from ntps.core.ntps import ntps_paper_all_k

    u, v = synthetic_subspaces(hidden_size, n_classes=8, seed=0)
    sweep = best_of(repeats, lambda: ntps_paper_all_k(u, v))
    start = time.perf_counter()
    per_k = np.array([pinv_ntps(u, v, k) for k in range(1, hidden_size + 1)])
    pseudo_inverse = time.perf_counter() - start
    return {
        "hidden_size": hidden_size,
        "all_k_sweep_s": sweep,
        "pinv_per_k_s": pseudo_inverse,
        "speedup": pseudo_inverse / sweep,
        "max_abs_difference": float(np.abs(ntps_paper_all_k(u, v) - per_k).max()),
    }


def layer_probe_cost(parameters: dict, n_layers: int, timed_full_layers: int) -> dict[str, float]:
    """Seconds per layer of the probe of every layer (probes.layers: the ridge probe with its
    leave-one-out choice and the per-layer selectors) against the probes a layer gets with
    probes.hidden_states (logistic probe, its cross-validation, k-NN, LogME, H-score), on synthetic
    pooled features of the default's size: 768 training and 256 held-out texts in 576 dimensions,
    6 classes. The full probes are timed on timed_full_layers layers only."""
    from ntps.core.probes import fit_logistic_probe
    from ntps.modeling.hidden_states import PooledFeatures
    from ntps.modeling.probing import layer_probe_table, logistic_options, probe_metrics_table

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 1024)
    features = rng.normal(size=(1024, n_layers, 576)).astype(np.float32)
    features[:, :, :6] += np.eye(6, dtype=np.float32)[labels][:, None, :]
    splits = np.where(np.arange(1024) < 768, "train", "test")
    pooled = PooledFeatures(features, np.arange(n_layers), labels, splits)
    # Every layer's logistic check handed over as already fitted: the per-layer work alone.
    fitted = pd.DataFrame({"hidden_state": np.arange(n_layers), "logistic_test_accuracy": 0.0, "logistic_converged": True})
    logistic = parameters["probes"]["logistic"]
    start = time.perf_counter()
    layer_probe_table(pooled, parameters["probes"]["layers"], logistic, fitted)
    cheap = (time.perf_counter() - start) / n_layers
    (train, train_labels), (test, test_labels) = (pooled.split(split, 0) for split in ("train", "test"))
    start = time.perf_counter()
    fit_logistic_probe(train, train_labels, test, test_labels, **logistic_options(logistic))
    check = time.perf_counter() - start
    subset = PooledFeatures(features[:, :timed_full_layers], np.arange(timed_full_layers), labels, splits)
    start = time.perf_counter()
    probe_metrics_table(subset, {**parameters["probes"], "hidden_states": "all"})
    full = (time.perf_counter() - start) / timed_full_layers
    return {
        "n_layers": n_layers,
        "layer_probe_s": cheap,
        "logistic_check_s": check,
        "full_probes_s": full,
        "ratio": full / cheap,
    }


def paper_lora_settings() -> dict:
    """The paper's LoRA settings, as the `paper_grid` environment configures them (its steps and dropout)."""
    from ntps.run_parameters import load_parameters

    return load_parameters(REPOSITORY, env="paper_grid")["lora"]


def ntps_vs_lora(setup: ModelOnTexts, parameters: dict, batch_size: int) -> dict[str, float]:
    import torch
    import transformers

    from ntps.core.ntps import score_tables
    from ntps.core.subspaces import layer_subspaces
    from ntps.modeling.classifiers import lora_classifier
    from ntps.modeling.hidden_states import extract_hidden_states
    from ntps.modeling.training import accuracy, train_classifier, training_attention, training_steps
    from ntps.sources.language_models import DTYPES

    tokenized, n_classes = setup.tokenized, setup.n_classes
    start = time.perf_counter()
    statistics, _ = extract_hidden_states(
        setup.backbone, tokenized, n_classes, batch_size=batch_size, pad_token_id=setup.pad_token_id, statistics_split=None
    )
    ridge = parameters["eigen_subspaces"]["ridge"]
    subspaces = layer_subspaces(statistics, ridge=ridge)
    scores = parameters["ntps_scores"]
    score_tables(statistics, subspaces, ridge, scores["paper_k_fractions"], released_code=scores["released_code"])
    ntps_seconds = time.perf_counter() - start
    settings = {**parameters["training"], **parameters["lora"]}
    paper = paper_lora_settings()
    attention = training_attention(torch.device("cpu"))
    other_attention = "sdpa" if attention == "eager" else "eager"

    def lora_seconds(
        steps: int, checkpoint: str, attention: str, dropout: float = settings["dropout"]
    ) -> tuple[float, float, float]:
        """(loading the backbone as fine_tune_lora does, a copy of its own since peft injects adapters into the
        modules it wraps; the stage after it: adapters with this dropout, training, scoring; the training steps
        alone)."""
        start = time.perf_counter()
        backbone = transformers.AutoModel.from_pretrained(
            setup.card["location"],
            dtype=DTYPES[settings["dtype"]],
            attn_implementation=attention,
            trust_remote_code=setup.card["spec"].get("trust_remote_code", False),
        )
        stage_start = time.perf_counter()
        stage = {**settings, "steps": steps, "epochs": None, "checkpoint_every": steps, "dropout": dropout}
        classifier = lora_classifier(backbone, n_classes, stage, seed=stage["seed"])
        training_start = time.perf_counter()
        train_classifier(classifier, tokenized, stage, setup.pad_token_id, checkpoint)
        training = time.perf_counter() - training_start
        accuracy(classifier, tokenized, stage["batch_size"], setup.pad_token_id)
        return stage_start - start, time.perf_counter() - stage_start, training

    configured_steps = training_steps(settings, len(tokenized))
    epoch_steps = -(-len(tokenized) // int(settings["batch_size"]))
    with tempfile.TemporaryDirectory() as folder:
        first_load, configured, _ = lora_seconds(configured_steps, os.path.join(folder, "configured.pt"), attention)
        second_load, epoch, epoch_training = lora_seconds(epoch_steps, os.path.join(folder, "epoch.pt"), attention)
        _, _, other_training = lora_seconds(epoch_steps, os.path.join(folder, "other.pt"), other_attention)
        _, _, paper_dropout_training = lora_seconds(
            epoch_steps, os.path.join(folder, "dropout.pt"), attention, paper["dropout"]
        )
    per_step = epoch_training / epoch_steps
    return {
        "texts": len(tokenized),
        "tokens": setup.tokens,
        "model_load_s": min(first_load, second_load),
        "ntps_s": ntps_seconds,
        "configured_steps": configured_steps,
        "lora_configured_s": configured,
        "epoch_steps": epoch_steps,
        "lora_epoch_s": epoch,
        "attention": attention,
        "lora_per_step_s": per_step,
        "other_attention": other_attention,
        "lora_per_step_other_attention_s": other_training / epoch_steps,
        "dropout": settings["dropout"],
        "paper_dropout": paper["dropout"],
        "lora_per_step_paper_dropout_s": paper_dropout_training / epoch_steps,
        "paper_steps": paper["steps"],
        "lora_paper_projected_s": epoch - epoch_training + per_step * paper["steps"],
    }


def report_statistics_overhead(arguments: argparse.Namespace, parameters: dict, emit: Emit) -> dict:
    setup = model_on_texts(parameters, arguments.model, arguments.dataset, arguments.texts, arguments.max_tokens)
    overhead = statistics_overhead(setup, arguments.batch_size, arguments.repeats)
    dtype = parameters["forward_pass"]["dtype"]
    emit(
        "statistics, %s: forward %.2f s, forward + statistics %.2f s -> %.2fx; the arithmetic: the statistics' "
        "products are %.1f GFLOP in float64, %.0f%% of the forward pass's %.1f GFLOP in %s; alone they take %.2f s "
        "(%.0f GFLOP/s, the forward %.0f GFLOP/s), so no float64 implementation gets below %.2fx; the remaining "
        "%.2f s are casts, prefix sums, gathers and checks; timed apart on the recorded hidden states, the "
        "statistics take %.2f s: 1 + that / the bare forward = %.2fx. With float32 products "
        "(forward_pass.statistics_products: float32, their rounding measured by --measure product-precision): "
        "forward + statistics %.2f s -> %.2fx; with bfloat16x3 products %.2f s -> %.2fx. The limit is %.1fx: %s",
        setup.described(),
        overhead["bare_forward_s"],
        overhead["forward_with_statistics_s"],
        overhead["ratio"],
        overhead["statistics_flops"] / 1e9,
        100 * overhead["statistics_flops"] / overhead["forward_flops"],
        overhead["forward_flops"] / 1e9,
        dtype,
        overhead["products_s"],
        overhead["statistics_flops"] / overhead["products_s"] / 1e9,
        overhead["forward_flop_rate"] / 1e9,
        1 + overhead["products_s"] / overhead["bare_forward_s"],
        overhead["forward_with_statistics_s"] - overhead["bare_forward_s"] - overhead["products_s"],
        overhead["statistics_alone_s"],
        1 + overhead["statistics_alone_s"] / overhead["bare_forward_s"],
        overhead["forward_with_float32_products_s"],
        overhead["float32_products_ratio"],
        overhead["forward_with_bfloat16x3_products_s"],
        overhead["bfloat16x3_products_ratio"],
        OVERHEAD_LIMIT,
        within_limit(overhead),
    )
    return overhead


def within_limit(overhead: dict[str, float]) -> str:
    """Which of the products keep the statistics within OVERHEAD_LIMIT of the bare forward pass."""
    ratios = {
        "float64": overhead["ratio"],
        "float32": overhead["float32_products_ratio"],
        "bfloat16x3": overhead["bfloat16x3_products_ratio"],
    }
    within = [name for name, ratio in ratios.items() if ratio <= OVERHEAD_LIMIT]
    return f"{', '.join(within)} products keep within it" if within else "no products keep within it"


def report_sweep_speedup(arguments: argparse.Namespace, parameters: dict, emit: Emit) -> dict:
    speedup = sweep_speedup(arguments.hidden_size, arguments.repeats)
    emit(
        "all-k sweep at d=%d: sweep %.3f s, pinv per k %.1f s -> %.0fx faster, max |difference| %.1e",
        speedup["hidden_size"],
        speedup["all_k_sweep_s"],
        speedup["pinv_per_k_s"],
        speedup["speedup"],
        speedup["max_abs_difference"],
    )
    return speedup


def report_layer_probe_cost(arguments: argparse.Namespace, parameters: dict, emit: Emit) -> dict:
    cost = layer_probe_cost(parameters, n_layers=31, timed_full_layers=2)
    pairs = len(parameters["run"]["models"]) * len(parameters["run"]["datasets"])
    emit(
        "probes per layer, synthetic 768 + 256 texts in 576 dimensions, 6 classes: the probe of every layer "
        "(ridge, leave-one-out, LogME, H-scores, effective rank) %.3f s per layer, %.1f s for %d layers, and the "
        "logistic check at the best layer %.2f s; the full probes of a probed hidden state (logistic, its "
        "cross-validation, k-NN, LogME, H-score) %.2f s per layer -> %.0fx. The run's %d pairs: %.0f s at most "
        "(every best layer other than the final block), against a budget of 30 s",
        cost["layer_probe_s"],
        cost["layer_probe_s"] * cost["n_layers"],
        cost["n_layers"],
        cost["logistic_check_s"],
        cost["full_probes_s"],
        cost["ratio"],
        pairs,
        pairs * (cost["layer_probe_s"] * cost["n_layers"] + cost["logistic_check_s"]),
    )
    return cost


def report_scores_stage_cost(arguments: argparse.Namespace, parameters: dict, emit: Emit) -> dict:
    values = {}
    for hidden_size in arguments.scores_hidden_sizes:
        cost = scores_stage_cost(hidden_size, arguments.repeats)
        floor_s = cost["dense_algebra_flops"] / (2.0 * hidden_size**3) * cost["matrix_product_s"]
        emit(
            "scores stage at d=%d, per layer: paper + signal sweeps on the stored basis %.3f s; excess loss + "
            "Theorem 2 %.3f s; whole stage %.3f s, with released_code %.3f s; meanXX's extreme eigenvalues by "
            "Lanczos %.3f s, every eigenvalue %.3f s (relative difference %.1e), on a spectrum dense at its end "
            "(meanXX of d texts) Lanczos for at most its restarts, then every eigenvalue: %.3f s, every eigenvalue "
            "alone %.3f s; released procedure alone on all BLAS threads %.3f s, one thread per call, side by side "
            "%.3f s; the stage's dense algebra is %.2g floating-point operations, %.2f s at this run's "
            "matrix-product rate (%.0f GFLOP/s), the floor no implementation of these operations gets below: "
            "the whole stage takes %.2fx that",
            hidden_size,
            cost["sweeps_s"],
            cost["excess_loss_s"],
            cost["stage_s"],
            cost["stage_with_released_code_s"],
            cost["extreme_eigenvalues_lanczos_s"],
            cost["every_eigenvalue_s"],
            cost["extreme_eigenvalues_relative_difference"],
            cost["extreme_eigenvalues_dense_end_s"],
            cost["every_eigenvalue_dense_end_s"],
            cost["released_code_all_blas_threads_s"],
            cost["released_code_pinned_s"],
            cost["dense_algebra_flops"],
            floor_s,
            2.0 * hidden_size**3 / cost["matrix_product_s"] / 1e9,
            cost["stage_s"] / floor_s,
        )
        values[f"d={hidden_size}"] = cost
    return values


def report_eigen_stage_cost(arguments: argparse.Namespace, parameters: dict, emit: Emit) -> dict:
    values = {}
    for hidden_size in arguments.eigen_hidden_sizes:
        cost = eigen_stage_cost(hidden_size, arguments.repeats)
        emit(
            "eigen stage at d=%d, per layer: U in closed form %.3f s; V's pencil %.3f s; the stored form %.3f s; "
            "the stage, their sum, %.3f s",
            hidden_size,
            cost["perception_closed_form_s"],
            cost["autoregressive_s"],
            cost["stored_form_s"],
            cost["stage_s"],
        )
        values[f"d={hidden_size}"] = cost
    return values


def report_product_precision(arguments: argparse.Namespace, parameters: dict, emit: Emit) -> dict:
    setup = model_on_texts(parameters, arguments.model, arguments.dataset, arguments.precision_texts, arguments.max_tokens)
    precision = product_precision(setup, arguments.batch_size, parameters["ntps_scores"]["paper_k_fractions"])
    emit(
        "product precision, %s: float32 products of cov0 and cov1 (summed in float64) are off by %.1e (cov0) and "
        "%.1e (cov1) of the largest entry, bfloat16x3 products by %.1e and %.1e",
        setup.described(),
        precision["float32_cov0_upper_relative_error"],
        precision["float32_cov1_relative_error"],
        precision["bfloat16x3_cov0_upper_relative_error"],
        precision["bfloat16x3_cov1_relative_error"],
    )
    for variant in ("paper", "signal", "label_variance_kept"):
        emit(
            "  %s: float32 products move the scores by up to %.1e (%.1e on the paper's k grid, median %.1e), "
            "bfloat16x3 products by up to %.1e (%.1e, median %.1e); the even against the odd batches' texts, both "
            "float64, by up to %.1e (%.1e, median %.1e)",
            variant,
            *(
                precision[f"{variant}_{comparison}_{part}"]
                for comparison in ("float32", "bfloat16x3", "halves")
                for part in ("max", "grid_max", "median")
            ),
        )
    return precision


def report_ntps_vs_lora(arguments: argparse.Namespace, parameters: dict, emit: Emit) -> dict:
    setup = model_on_texts(parameters, arguments.model, arguments.dataset, arguments.lora_texts, arguments.max_tokens)
    costs = ntps_vs_lora(setup, parameters, arguments.batch_size)
    emit(
        "NTPS vs LoRA, %s: NTPS stages %.1f s; LoRA %d steps (configured) %.1f s -> NTPS/LoRA %.2f; LoRA one epoch "
        "(%d steps) %.1f s -> %.2f; LoRA %d steps (the paper's, projected from %.2f s/step) %.0f s -> %.3f; loading "
        "the model, %.1f s, counted on neither side; a LoRA step with %s attention (the training stages' on a CPU) %.2f s, "
        "with %s %.2f s (%.2fx); with LoRA dropout %g (the configured) %.2f s, with %g (the paper's) %.2f s (%.2fx)",
        setup.described(),
        costs["ntps_s"],
        costs["configured_steps"],
        costs["lora_configured_s"],
        costs["ntps_s"] / costs["lora_configured_s"],
        costs["epoch_steps"],
        costs["lora_epoch_s"],
        costs["ntps_s"] / costs["lora_epoch_s"],
        costs["paper_steps"],
        costs["lora_per_step_s"],
        costs["lora_paper_projected_s"],
        costs["ntps_s"] / costs["lora_paper_projected_s"],
        costs["model_load_s"],
        costs["attention"],
        costs["lora_per_step_s"],
        costs["other_attention"],
        costs["lora_per_step_other_attention_s"],
        costs["lora_per_step_other_attention_s"] / costs["lora_per_step_s"],
        costs["dropout"],
        costs["lora_per_step_s"],
        costs["paper_dropout"],
        costs["lora_per_step_paper_dropout_s"],
        costs["lora_per_step_paper_dropout_s"] / costs["lora_per_step_s"],
    )
    return costs


REPORTS: dict[str, Callable[[argparse.Namespace, dict, Emit], dict]] = {
    "statistics": report_statistics_overhead,
    "sweep": report_sweep_speedup,
    "scores": report_scores_stage_cost,
    "eigen": report_eigen_stage_cost,
    "product-precision": report_product_precision,
    "lora": report_ntps_vs_lora,
    "layer-probes": report_layer_probe_cost,
}


def measured_ntps() -> Path:
    """The folder of the ntps package this process measures (a --baseline run's is its worktree's)."""
    import ntps

    return Path(ntps.__file__).resolve().parent


def run_measures(arguments: argparse.Namespace, parameters: dict | None) -> dict[str, dict]:
    """{measure: {"lines": the lines it printed, "values": its numbers}} for each measure asked for."""
    entries = {}
    for measure in MEASURES:
        if measure not in arguments.measure:
            continue
        lines: list[str] = []

        def emit(message: str, *fields: Any) -> None:
            line = message % fields
            logger.info("%s", line)
            lines.append(line)

        try:
            values = REPORTS[measure](arguments, parameters, emit)
        except (ImportError, AttributeError) as error:
            if measured_ntps() == REPOSITORY / "src" / "ntps":
                raise
            raise SystemExit(f"the ntps at {measured_ntps()} lacks what --measure {measure} needs: {error}") from error
        entries[measure] = {"lines": lines, "values": values}
    return entries


def json_numbers(value: Any) -> Any:
    """value with numpy scalars as Python numbers and NaN or infinite ones as null (strict JSON)."""
    if isinstance(value, dict):
        return {key: json_numbers(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def timing_ratios(current: dict, baseline: dict) -> dict:
    """current / baseline for every timing (a value named *_s) that both hold, group by group; null
    where either is missing or not finite."""
    ratios = {}
    for key, value in current.items():
        if isinstance(value, dict):
            ratios[key] = timing_ratios(value, baseline.get(key) or {})
        elif key.endswith("_s"):
            before = baseline.get(key)
            ratios[key] = value / before if value is not None and before else None
    return ratios


def git(*arguments: str) -> str:
    done = subprocess.run(["git", *arguments], cwd=REPOSITORY, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"git {shlex.join(arguments)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def commit_hash(commit: str) -> str:
    """The full hash of a commit of this repository, checked before anything is measured."""
    resolved = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"], cwd=REPOSITORY, capture_output=True, text=True
    )
    if resolved.returncode != 0:
        raise SystemExit(f"--baseline {commit}: not a commit of {REPOSITORY}")
    return resolved.stdout.strip()


@contextlib.contextmanager
def baseline_worktree(full_hash: str) -> Iterator[Path]:
    """A temporary git worktree of the commit, removed on leaving."""
    folder = Path(tempfile.mkdtemp(prefix="ntps-baseline-"))
    worktree = folder / full_hash[:12]
    try:
        git("worktree", "add", "--detach", str(worktree), full_hash)
        yield worktree
    finally:
        if worktree.exists():
            git("worktree", "remove", "--force", str(worktree))
        shutil.rmtree(folder, ignore_errors=True)


def measure_options(arguments: argparse.Namespace) -> list[str]:
    """The command-line options that say what is measured, as this run parsed them."""
    options = []
    for name, value in vars(arguments).items():
        if name in RUN_OPTIONS or value is None:
            continue
        options += [f"--{name.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value])]
    return options


def baseline_measures(arguments: argparse.Namespace, parameters: dict | None, full_hash: str) -> dict[str, dict]:
    """run_measures' entries of the same measures on the commit's ntps."""
    with baseline_worktree(full_hash) as worktree, tempfile.TemporaryDirectory() as folder:
        source = worktree / "src"
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])),
        }
        probe = [sys.executable, "-c", "import ntps; print(ntps.__file__)"]
        imported = subprocess.run(probe, env=environment, capture_output=True, text=True)
        if Path(imported.stdout.strip()).resolve().parent != (source / "ntps").resolve():
            raise SystemExit(
                f"--baseline {arguments.baseline}: with {source} first on PYTHONPATH, ntps comes from elsewhere"
            )
        command = [sys.executable, str(Path(__file__).resolve()), *measure_options(arguments)]
        command += ["--output", os.path.join(folder, "baseline.json")]
        if parameters is not None:
            handed_over = os.path.join(folder, "parameters.json")
            Path(handed_over).write_text(json.dumps(parameters), encoding="utf-8")
            command += ["--parameters", handed_over]
        logger.info("baseline %s: the same measures with ntps from %s", full_hash, source)
        last_line = relay_stderr(command, environment)
        if last_line is not None:
            raise SystemExit(f"--baseline {arguments.baseline} ({full_hash}): {last_line}")
        return json.loads(Path(folder, "baseline.json").read_text(encoding="utf-8"))["measures"]


def relay_stderr(command: list[str], environment: dict[str, str]) -> str | None:
    """Runs command, passing on what it writes to stderr as it comes; None if it succeeds, else the
    last line it wrote (a run's error message)."""
    process = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE)
    last_line = ""
    for line in process.stderr:  # bytes, split at newlines only: progress bars redraw with \r
        sys.stderr.write(line.decode(errors="replace"))
        sys.stderr.flush()
        if line.strip():
            last_line = line.decode(errors="replace").split("\r")[-1].strip()
    return None if process.wait() == 0 else last_line or f"exited with {process.returncode}"


def add_baseline(entries: dict[str, dict], full_hash: str, baseline: dict[str, dict]) -> None:
    """Adds to each entry the baseline's lines and values, the ratios current / baseline of its
    timings, and a printed line of those ratios per group of values."""
    for measure, entry in entries.items():
        current, before = json_numbers(entry["values"]), baseline[measure]["values"]
        ratios = timing_ratios(current, before)
        entry["baseline"] = {"commit": full_hash, "lines": baseline[measure]["lines"], "values": before, "ratios": ratios}
        groups = {key: group for key, group in ratios.items() if isinstance(group, dict)} or {"": ratios}
        for group, timings in groups.items():
            listed = ", ".join(f"{name} {'n/a' if ratio is None else f'{ratio:.2f}x'}" for name, ratio in timings.items())
            line = (
                f"{measure}{' at ' + group if group else ''}, current / baseline {full_hash[:12]}: {listed or 'no timings'}"
            )
            logger.info("%s", line)
            entry["lines"].append(line)


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(output: Path, command: str, entries: dict[str, dict]) -> None:
    """Writes this run's entries into output, keeping the entries of measures not run from the file there."""
    measures = json.loads(output.read_text(encoding="utf-8"))["measures"] if output.exists() else {}
    measures |= {measure: {"command": command, **json_numbers(entry)} for measure, entry in entries.items()}
    results = {"command": command, "machine": machine(), "measures": measures}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def project_parameters() -> dict:
    """conf/base + $KEDRO_ENV's (default local) parameters. Imported here: Kedro configures its
    logging on import."""
    from ntps.run_parameters import load_parameters

    return load_parameters()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", choices=MEASURES, nargs="+", default=list(MEASURES))
    parser.add_argument("--model", help="a name of the models: registry (default: the first of run.models)")
    parser.add_argument("--dataset", help="a name of the datasets: registry (default: the first of run.datasets)")
    parser.add_argument("--texts", type=int, default=96, help="texts of the statistics overhead")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden-size", type=int, default=1024, help="width of the all-k sweep")
    parser.add_argument("--repeats", type=int, default=3, help="each timing is the best of this many")
    parser.add_argument("--lora-texts", type=int, default=256, help="texts of the NTPS-vs-LoRA comparison")
    parser.add_argument("--scores-hidden-sizes", type=int, nargs="+", default=[576, 2048])
    parser.add_argument("--eigen-hidden-sizes", type=int, nargs="+", default=[576, 2048])
    parser.add_argument("--precision-texts", type=int, default=400, help="texts of the product-precision comparison")
    parser.add_argument(
        "--forward-dtype", choices=["float32", "bfloat16"], help="the forward pass's precision (default: forward_pass.dtype)"
    )
    parser.add_argument("--baseline", metavar="COMMIT", help="measure again on this commit's ntps, and print the ratios")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="the JSON file of results (default: %(default)s)"
    )
    parser.add_argument(
        "--parameters", type=Path, help="the project's parameters as JSON instead of conf/ (a baseline run gets this run's)"
    )
    return parser


def configure_logging() -> None:
    """The results get a handler of their own: importing Kedro installs its logging configuration."""
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parser().parse_args(argv)
    python = os.path.relpath(sys.executable) if Path(sys.executable).is_relative_to(Path.cwd()) else sys.executable
    command = shlex.join([python, os.path.relpath(__file__), *argv])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    configure_logging()
    logger.info("torch %s, %d threads; ntps from %s", torch.__version__, torch.get_num_threads(), measured_ntps())
    full_hash = None if arguments.baseline is None else commit_hash(arguments.baseline)
    parameters = None
    if arguments.parameters is not None:
        parameters = json.loads(arguments.parameters.read_text(encoding="utf-8"))
    elif set(arguments.measure) & set(PARAMETER_MEASURES):
        parameters = project_parameters()
    if parameters is not None and arguments.forward_dtype is not None:
        parameters["forward_pass"]["dtype"] = arguments.forward_dtype
    if parameters is not None:
        arguments.model = arguments.model or parameters["run"]["models"][0]
        arguments.dataset = arguments.dataset or parameters["run"]["datasets"][0]
    entries = run_measures(arguments, parameters)
    write_results(arguments.output, command, entries)
    if full_hash is not None:
        add_baseline(entries, full_hash, baseline_measures(arguments, parameters, full_hash))
        write_results(arguments.output, command, entries)


if __name__ == "__main__":
    main()

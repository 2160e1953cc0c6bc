"""benchmarks/scale_benchmark.py runs end to end on a tiny shape and extrapolates consistently."""

from __future__ import annotations

import sys

import pytest
import torch
import transformers

from tests.conftest import REPOSITORY


@pytest.fixture
def scale_benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(REPOSITORY / "benchmarks"))
    import scale_benchmark

    yield scale_benchmark
    sys.modules.pop("scale_benchmark", None)


def test_a_tiny_shape_is_measured_per_layer_and_extrapolated_to_its_depth(scale_benchmark):
    # Qwen2-0.5B's name on a tiny shape, so that the grid counts it.
    tiny = scale_benchmark.Architecture(("qwen2_0_5b",), transformers.LlamaConfig, 32, 6, 64, 4, 2, 100)
    result = scale_benchmark.measure(tiny, blocks=2, tokens=10_000, batch=2, length=8, device="cpu", dtype=torch.float32)
    per_layer, pair = result["per_layer"], result["pair"]
    assert (result["blocks_run"], result["blocks_real"]) == (2, 6) and per_layer["peak_cuda_mb"] is None
    timed = ("forward_s_per_1k_tokens", "statistics_s_per_1k_tokens", "eigen_s", "scores_s")
    assert all(per_layer[name] > 0 for name in timed)
    # The pair multiplies by the real depth: 6 blocks, 7 hidden states, 10,000 tokens.
    assert pair["forward_s"] == pytest.approx(per_layer["forward_s_per_1k_tokens"] * 6 * 10)
    assert pair["bytes_written"] == per_layer["bytes_written"] * 7
    statistics_s = per_layer["statistics_s_per_1k_tokens"] * 7 * 10
    assert result["statistics_overhead"] == pytest.approx(1 + statistics_s / pair["forward_s"])
    assert result["model_x_12_datasets"]["total_s"] == pytest.approx(12 * pair["total_s"])
    grid = scale_benchmark.grid([result])
    assert grid["models_covered"] == ["qwen2_0_5b"] and len(grid["models_not_measured"]) == 7
    assert grid["grid"]["total_s"] == pytest.approx(12 * pair["total_s"])

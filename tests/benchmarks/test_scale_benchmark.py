"""benchmarks/scale_benchmark.py runs end to end on a tiny shape and extrapolates consistently."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
import torch
import transformers

from tests.conftest import REPOSITORY


@pytest.fixture
def scale_benchmark(benchmark_script):
    return benchmark_script("scale_benchmark")


def test_a_tiny_shape_is_measured_per_layer_and_extrapolated_to_its_depth(scale_benchmark):
    # Qwen2-0.5B's name on a tiny shape, so that the grid counts it.
    tiny = scale_benchmark.Architecture(("qwen2_0_5b",), transformers.LlamaConfig, 32, 6, 64, 4, 2, 100)
    result = scale_benchmark.measure(
        tiny,
        blocks=2,
        tokens=10_000,
        batch=2,
        length=8,
        device="cpu",
        dtype=torch.float32,
        products=["float64", "bfloat16x3"],
    )
    per_layer, pair = result["per_layer"], result["pair"]
    assert (result["blocks_run"], result["blocks_real"]) == (2, 6) and per_layer["peak_cuda_mb"] is None
    timed = ("forward_s_per_1k_tokens", "statistics_s_per_1k_tokens", "eigen_s", "scores_s")
    assert all(per_layer[name] > 0 for name in timed)
    # The pair multiplies by the real depth: 6 blocks, 7 hidden states, 10,000 tokens.
    assert pair["forward_s"] == pytest.approx(per_layer["forward_s_per_1k_tokens"] * 6 * 10)
    assert pair["bytes_written"] == per_layer["bytes_written"] * 7
    statistics_s = per_layer["statistics_s_per_1k_tokens"] * 7 * 10
    assert result["statistics_overhead"] == pytest.approx(1 + statistics_s / pair["forward_s"])
    products_s = per_layer["statistics_products_s_per_1k_tokens"] * 7 * 10
    assert result["statistics_overhead_floor"] == pytest.approx(1 + products_s / pair["forward_s"])
    split_s = per_layer["statistics_bfloat16x3_s_per_1k_tokens"] * 7 * 10
    assert result["statistics_overhead_bfloat16x3"] == pytest.approx(1 + split_s / pair["forward_s"])
    assert 0 < per_layer["statistics_bfloat16x3_relative_error"] < 1e-6  # float32-accurate, not exact
    # 2 texts x 7 next-token pairs: cov1's 2 d^2 and cov0's 5/8 of that per pair, at the timed rate.
    flops = 14 * (2 + 2 * 5 / 8) * 32**2
    assert per_layer["float64_product_flops_per_s"] * per_layer["statistics_products_s_per_1k_tokens"] == (
        pytest.approx(flops * 1000 / 16)
    )
    assert result["model_x_12_datasets"]["total_s"] == pytest.approx(12 * pair["total_s"])
    grid = scale_benchmark.grid([result])
    assert grid["models_covered"] == ["qwen2_0_5b"] and len(grid["models_not_measured"]) == 7
    assert grid["grid"]["total_s"] == pytest.approx(12 * pair["total_s"])


def test_agreement_with_scipy_measures_the_torch_path_against_scipy(scale_benchmark):
    # The comparison a GPU run reports, here with torch.linalg on the CPU.
    statistics = scale_benchmark.synthetic_statistics(24, n_classes=3, seed=1)
    solved = scale_benchmark.layer_subspaces(statistics, ridge=scale_benchmark.RIDGE, device=torch.device("cpu"))
    loaded = scale_benchmark.LayerSubspaces.from_arrays(solved.to_arrays())
    scores, _ = scale_benchmark.score_tables(
        statistics,
        loaded,
        scale_benchmark.RIDGE,
        scale_benchmark.SCORE_FRACTIONS,
        released_code=False,
        device=torch.device("cpu"),
    )
    agreement = scale_benchmark.agreement_with_scipy(statistics, solved, loaded, scores)
    assert agreement["u_v_max_relative_difference_vs_scipy"] < 1e-8
    assert agreement["scores_max_abs_difference_vs_scipy"] < 1e-8
    # and it sees a difference where there is one
    scores["ntps"] += 1e-3
    assert scale_benchmark.agreement_with_scipy(statistics, solved, loaded, scores)[
        "scores_max_abs_difference_vs_scipy"
    ] == pytest.approx(1e-3)


def test_the_scale_benchmark_imports_nothing_a_bare_gpu_machine_lacks():
    # benchmarks/gpu_scale_check.sh runs it where only torch, transformers and scipy's stack are
    # installed, and Kedro travels as a wheel: no MLflow, no kedro-datasets, no Hugging Face datasets.
    probe = (
        "import sys; sys.path.insert(0, 'benchmarks'); import scale_benchmark; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'kedro_mlflow', 'kedro_datasets', 'datasets'}))"
    )
    imported = subprocess.run([sys.executable, "-c", probe], cwd=REPOSITORY, capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"


def test_the_results_file_holds_every_figure_of_the_pair_cost_table(scale_benchmark, monkeypatch, tmp_path, capsys):
    # docs/scaling.md's `scaling-pair-cost` and the grid totals below it are rendered from this file.
    tiny = scale_benchmark.Architecture(("qwen2_0_5b",), transformers.LlamaConfig, 32, 6, 64, 4, 2, 100)
    monkeypatch.setattr(scale_benchmark, "ARCHITECTURES", {32: tiny})
    output = tmp_path / "results" / "scale.json"
    options = ["--blocks", "1", "--tokens", "10000", "--batch", "2", "--length", "8", "--device", "cpu"]
    scale_benchmark.main([*options, "--output", str(output)])
    record = json.loads(output.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the file"))
    assert set(record) == {"command", "machine", "wall_s", "widths", "grid"}
    assert record["command"] == shlex.join(sys.orig_argv)  # here pytest's
    assert {"cpu_count", "cpus_usable", "cpu_model", "platform", "torch", "numpy", "device"} <= set(record["machine"])
    assert record["machine"]["device"] == "cpu" and record["wall_s"] > 0
    # The file holds the lines printed on stdout, per width and the grid.
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == [*record["widths"], record["grid"]]
    (width,) = record["widths"]
    # Every column: d, paper models (blocks), forward, statistics, overhead, floor, eigen, scores,
    # MB / layer, pair: forward + statistics, pair: eigen + scores, pair: disk, 12 datasets.
    assert (width["hidden_size"], width["models"], width["blocks_real"], width["blocks_run"]) == (32, ["qwen2_0_5b"], 6, 1)
    per_layer, pair = width["per_layer"], width["pair"]
    for name in ("forward_s_per_1k_tokens", "statistics_s_per_1k_tokens", "eigen_s", "scores_s", "bytes_written"):
        assert per_layer[name] > 0, name
    assert width["statistics_overhead"] > 1 and width["statistics_overhead_floor"] > 1
    assert pair["forward_and_statistics_s"] == pytest.approx(pair["forward_s"] + pair["statistics_s"])
    assert pair["eigen_and_scores_s"] == pytest.approx(pair["eigen_s"] + pair["scores_s"])
    assert pair["total_s"] == pytest.approx(pair["forward_and_statistics_s"] + pair["eigen_and_scores_s"])
    assert pair["bytes_written"] == 7 * per_layer["bytes_written"]
    assert width["model_x_12_datasets"]["total_s"] == pytest.approx(12 * pair["total_s"])
    # The text: the timed batch, the tokens, the forward dtype, the peak memory and the grid's totals.
    assert (width["batch"], width["length"], width["tokens"], width["dtype"]) == (2, 8, 10_000, "float32")
    assert per_layer["peak_rss_mb"] > 0
    assert record["grid"]["grid"]["total_s"] == pytest.approx(12 * pair["total_s"])
    assert record["grid"]["grid"]["bytes_written"] == 12 * pair["bytes_written"]
    assert record["grid"]["models_covered"] == ["qwen2_0_5b"]

"""benchmarks/forward_precision.py: the change of every score between a float32 and a bfloat16 run, set
beside the null's sd and the split-half variation, from two saved versions of the run's tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def forward_precision(benchmark_script, monkeypatch, tmp_path):
    forward_precision = benchmark_script("forward_precision")
    monkeypatch.setattr(forward_precision, "REPORTING", tmp_path / "reporting")
    monkeypatch.setattr(forward_precision, "RESULTS", tmp_path / "results")
    return forward_precision


def save(root, table: str, version: str, frame: pd.DataFrame) -> None:
    folder = root / table / version
    folder.mkdir(parents=True)
    frame.to_parquet(folder / table)


def test_the_change_is_measured_in_null_sds_and_beside_the_split_half_variation(forward_precision, tmp_path, monkeypatch):
    rows = [
        {"model": "m", "dataset": "d", "variant": variant, "layer": layer, "k": k, "on_paper_grid": k == 1}
        for variant in ("paper", "signal", "label_variance_kept")
        for layer in (0, 1)
        for k in (1, 2)
    ]
    # Per variant, bfloat16 changes "above its null" (p <= 0.05) at 1 of the 4 (layer, k), a redrawn null at 3.
    float32 = pd.DataFrame(rows).assign(ntps=0.5, null_sd=0.01, null_p_value=np.tile([0.04, 0.04, 0.5, 0.5], 3))
    bfloat16 = float32.assign(
        ntps=0.5 + np.tile([0.0, 0.002, 0.004, 0.012], 3), null_p_value=np.tile([0.04, 0.5, 0.5, 0.5], 3)
    )
    redrawn = float32.assign(null_p_value=np.tile([0.5, 0.5, 0.04, 0.5], 3))
    monkeypatch.setattr(forward_precision, "redrawn_null_table", lambda version, seed: redrawn)
    root = tmp_path / "reporting"
    save(root, "ntps_table.parquet", "2026-01-01T00.00.00.000Z", float32)
    save(root, "ntps_table.parquet", "2026-01-02T00.00.00.000Z", bfloat16)
    probes = pd.DataFrame(
        {"model": "m", "dataset": "d", "hidden_state": [0, 1], "loo_accuracy": [0.6, 0.7], "test_accuracy": [0.6, 0.7]}
    ).assign(best_layer=[False, True])
    save(root, "layer_probe_table.parquet", "2026-01-01T00.00.00.000Z", probes)
    bfloat16_probes = probes.assign(loo_accuracy=[0.6, 0.68], best_layer=[True, False])
    save(root, "layer_probe_table.parquet", "2026-01-02T00.00.00.000Z", bfloat16_probes)
    (tmp_path / "results").mkdir()
    halves = {
        f"{variant}_halves_{part}": 0.003
        for variant in ("paper", "signal", "label_variance_kept")
        for part in ("median", "grid_max")
    }
    (tmp_path / "results/ntps_benchmark.json").write_text(
        json.dumps({"measures": {"product-precision": {"values": halves}}})
    )
    monkeypatch.setattr(
        forward_precision,
        "stage_seconds",
        lambda dtype, run_id: {"hidden_statistics": {"float32": 300.0, "bfloat16": 100.0}[dtype], "run_id": dtype},
    )
    assert forward_precision.main([]) == 0
    result = json.loads((tmp_path / "results/forward_precision.json").read_text())
    paper = result["variants"]["paper"]
    assert paper["max"] == pytest.approx(0.012) and paper["grid_max"] == pytest.approx(0.004)
    assert paper["median_in_null_sds"] == pytest.approx(0.3) and paper["max_in_null_sds"] == pytest.approx(1.2)
    assert paper["split_half_median"] == 0.003 and paper["share_over_one_null_sd"] == 0.25
    assert paper["above_null_changed"] == 0.25 and paper["above_null_changed_by_redrawn_null"] == 0.75
    assert result["probes"]["loo_accuracy_max_change"] == pytest.approx(0.02) and result["probes"]["best_layer_same"] == 0
    # bfloat16 chose layer 0: float32's leave-one-out accuracy there is 0.1 below its best.
    assert result["probes"]["best_layer_max_regret"] == pytest.approx(0.1)
    assert result["lines"][0].startswith("forward pass and statistics: 300 s in float32, 100 s in bfloat16 (3.00x faster)")

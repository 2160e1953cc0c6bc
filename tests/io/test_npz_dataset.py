"""ntps.io.NpzDataset: exact round trips, memory no larger than the arrays, no truncated archive."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from kedro.io.core import DatasetError, Version

from ntps.io import NpzDataset


def layer_arrays(n_layers: int = 8, d: int = 512) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "cov0": rng.normal(size=(n_layers, d, d)),
        "cov1": rng.normal(size=(n_layers, d, d)),
        "class_counts": np.arange(5, dtype=np.int64),
    }


def peak_bytes(run) -> int:
    """Peak traced allocation while run() runs (numpy reports its array buffers to tracemalloc)."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_round_trip_is_exact_and_versioned(tmp_path):
    arrays = layer_arrays(n_layers=2, d=16)
    dataset = NpzDataset(filepath=str(tmp_path / "stats.npz"), version=Version(None, "2026-11-30T00.00.00.000Z"))
    dataset.save(arrays)
    assert (tmp_path / "stats.npz/2026-11-30T00.00.00.000Z/stats.npz").is_file()
    assert not list(tmp_path.rglob("*.partial"))
    loaded = NpzDataset(filepath=str(tmp_path / "stats.npz"), version=Version(None, None)).load()
    assert loaded.keys() == arrays.keys()
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded[name], value)
        assert loaded[name].dtype == value.dtype
    with pytest.raises(DatasetError, match="dict of arrays"):
        dataset.save([1, 2])


def test_load_and_save_hold_no_second_copy_of_the_archive(tmp_path):
    arrays = layer_arrays()
    size = sum(value.nbytes for value in arrays.values())  # 33.6 MB
    dataset = NpzDataset(filepath=str(tmp_path / "stats.npz"))
    assert peak_bytes(lambda: dataset.save(arrays)) < 0.6 * size  # numpy writes in chunks of at most 16 MiB
    assert peak_bytes(dataset.load) < 1.05 * size  # the arrays themselves, and no buffer of the file


def test_a_save_that_fails_midway_leaves_no_archive_to_load(tmp_path, monkeypatch):
    dataset = NpzDataset(filepath=str(tmp_path / "stats.npz"), version=Version(None, "2026-11-30T00.00.00.000Z"))

    def fail_after_writing_some(stream, **arrays):
        stream.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail_after_writing_some)
    with pytest.raises(DatasetError, match="disk full"):
        dataset.save(layer_arrays(n_layers=1, d=4))
    assert not dataset.exists()
    assert not (tmp_path / "stats.npz/2026-11-30T00.00.00.000Z/stats.npz").exists()

"""ntps.io.NpzDataset: exact round trips, memory-mapped loads, layer-by-layer saves, no truncated archive."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io.core import DatasetError, Version

from ntps.io import NpzDataset, npz_dataset
from ntps.io.layer_stream import LayerStream
from tests.conftest import peak_traced_bytes


def layer_arrays(n_layers: int = 8, d: int = 512) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "cov0": rng.normal(size=(n_layers, d, d)),
        "cov1": rng.normal(size=(n_layers, d, d)),
        "class_counts": np.arange(5, dtype=np.int64),
    }


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
    with pytest.raises(DatasetError, match="mapping of names to arrays"):
        dataset.save([1, 2])


def test_load_and_save_hold_no_second_copy_of_the_archive(tmp_path):
    arrays = layer_arrays()
    size = sum(value.nbytes for value in arrays.values())  # 33.6 MB
    dataset = NpzDataset(filepath=str(tmp_path / "stats.npz"))
    assert peak_traced_bytes(lambda: dataset.save(arrays)) < 0.2 * size  # written a layer (2.1 MB) at a time
    # On the local disk every array is mapped from the file, read-only: loading reads nothing.
    loaded = {}
    assert peak_traced_bytes(lambda: loaded.update(dataset.load())) < 0.01 * size
    assert all(isinstance(loaded[name], np.memmap) and not loaded[name].flags.writeable for name in ("cov0", "cov1"))
    np.testing.assert_array_equal(loaded["cov1"][3], arrays["cov1"][3])
    # Elsewhere (an in-memory file system here) each array is read into its own memory, once.
    remote = NpzDataset(filepath="memory://ntps-test/stats.npz")
    remote.save(arrays)
    assert peak_traced_bytes(remote.load) < 1.05 * size


def test_archives_that_cannot_be_mapped_are_read_and_pickles_refused(tmp_path):
    arrays = {"cov0": np.arange(12.0).reshape(3, 4), "empty": np.zeros((0, 3)), "scalar": np.asarray(7)}
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    np.savez(tmp_path / "plain.npz", **arrays)
    for name in ("compressed", "plain"):
        loaded = NpzDataset(filepath=str(tmp_path / f"{name}.npz")).load()
        for key, value in arrays.items():
            np.testing.assert_array_equal(loaded[key], value)
            assert loaded[key].shape == value.shape
    np.savez(tmp_path / "pickled.npz", objects=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DatasetError, match="never unpickles"):
        NpzDataset(filepath=str(tmp_path / "pickled.npz")).load()


def test_a_layer_stream_is_saved_one_layer_at_a_time(tmp_path):
    n_layers, d = 8, 512
    computed = []

    def layer(index: int) -> dict[str, np.ndarray]:
        computed.append(index)
        rng = np.random.default_rng(index)
        return {"vectors": rng.normal(size=(d, d)), "rank": np.int64(index)}

    stream = LayerStream(n_layers, layer, description="test layers")
    dataset = NpzDataset(filepath=str(tmp_path / "subspaces.npz"))
    layer_bytes = d * d * 8
    assert peak_traced_bytes(lambda: dataset.save(stream)) < 3 * layer_bytes  # the stack is 8 layers
    assert computed == list(range(n_layers))
    loaded = dataset.load()
    np.testing.assert_array_equal(loaded["rank"], np.arange(n_layers))
    for index in (0, n_layers - 1):
        np.testing.assert_array_equal(loaded["vectors"][index], layer(index)["vectors"])
    assert [path.name for path in tmp_path.rglob("*")] == ["subspaces.npz"]  # the spilled files are gone
    # Read as a mapping (in memory, between nodes), the stack is computed once.
    computed.clear()
    assert stream["rank"].tolist() == list(range(n_layers)) and set(stream) == {"vectors", "rank"}
    assert computed == list(range(n_layers))


def test_a_save_that_fails_midway_leaves_no_archive_to_load(tmp_path, monkeypatch):
    dataset = NpzDataset(filepath=str(tmp_path / "stats.npz"), version=Version(None, "2026-11-30T00.00.00.000Z"))

    def fail_after_writing_some(stream, arrays):
        stream.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(npz_dataset, "_write_npz", fail_after_writing_some)
    with pytest.raises(DatasetError, match="disk full"):
        dataset.save(layer_arrays(n_layers=1, d=4))
    assert not dataset.exists()
    assert not (tmp_path / "stats.npz/2026-11-30T00.00.00.000Z/stats.npz").exists()

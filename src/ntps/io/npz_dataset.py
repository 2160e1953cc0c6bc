"""A versioned Kedro dataset for a mapping of named numpy arrays, stored as one .npz archive."""

from __future__ import annotations

import logging
import os
import struct
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import fsspec
import numpy as np
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path

from ntps.io.layer_stream import LayerStream

logger = logging.getLogger(__name__)

# A zip member's local header: 30 fixed bytes, the last four of which give the lengths of the
# name and the extra field that follow it; the member's data starts after them.
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(member) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def _memory_mapped(path: str) -> dict[str, np.ndarray]:
    """Every array of an uncompressed .npz file mapped read-only from the file (numpy maps .npy
    files, not .npz archives): loading reads nothing until a layer is used. Members that cannot be
    mapped (empty or 0-d arrays, compressed members, an .npy format of another version) are read."""
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        for member in archive.infolist():
            mapped = _mapped_member(path, raw, member) if member.compress_type == zipfile.ZIP_STORED else None
            arrays[member.filename.removesuffix(".npy")] = _read_member(archive, member) if mapped is None else mapped
    return arrays


def _mapped_member(path: str, raw: BinaryIO, member: zipfile.ZipInfo) -> np.ndarray | None:
    """The stored member's array mapped from the file, or None where it cannot be."""
    raw.seek(member.header_offset)
    *_, name_length, extra_length = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
    raw.seek(member.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    read_header = _NPY_HEADER_READERS.get(np.lib.format.read_magic(raw))
    if read_header is None:
        return None
    shape, fortran_order, dtype = read_header(raw)
    if dtype.hasobject:
        raise DatasetError(f"{path}: array {member.filename!r} holds Python objects; NpzDataset never unpickles")
    if not shape or 0 in shape:
        return None
    order = "F" if fortran_order else "C"
    return np.memmap(path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape, order=order)


def _write_npz(stream: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """numpy.savez's archive (one uncompressed .npy member per array), each array written one
    slice of its first axis (a layer) at a time: a memory-mapped array passes through memory a
    layer at a time, where numpy.savez copies up to 16 MiB at once."""
    with zipfile.ZipFile(stream, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, value in arrays.items():
            array = np.asarray(value)
            if array.dtype.hasobject:
                raise DatasetError(f"array {name!r} holds Python objects; NpzDataset never pickles")
            header = {**np.lib.format.header_data_from_array_1_0(array), "fortran_order": False}
            with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, header)
                for part in array if array.ndim > 1 else [array]:
                    member.write(np.ascontiguousarray(part).tobytes())


def _spilled(stream: LayerStream, folder: Path) -> dict[str, np.ndarray]:
    """A LayerStream written layer by layer into one .npy file per array in `folder`, mapped back
    read-only: the stack exists on disk, never in memory."""
    files = {}
    for layer, arrays in enumerate(stream.layers()):
        for name, array in arrays.items():
            if name not in files:
                files[name] = np.lib.format.open_memmap(
                    folder / f"{name}.npy", mode="w+", dtype=array.dtype, shape=(stream.n_layers, *np.shape(array))
                )
            files[name][layer] = array
    for file in files.values():
        file.flush()
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in files}


class NpzDataset(AbstractVersionedDataset[Mapping, dict]):
    """Saves a mapping of named arrays as numpy.savez does (uncompressed: float64 statistics do
    not compress) and loads it back as a dict. Object arrays are refused, so loading never unpickles.

    Paper-scale archives are several GB, so neither direction holds a second copy: on the local
    disk loading memory-maps each array (read-only; a layer is read when it is used), and a
    LayerStream is saved one layer at a time.
    """

    def __init__(
        self,
        *,
        filepath: str | os.PathLike,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        remove_when_released: bool = False,
    ) -> None:
        """remove_when_released: delete the archive this dataset saved once Kedro releases it,
        that is once every node of the run that reads it has run (conf/paper_grid/catalog.yml:
        a paper-scale grid keeps one pair's statistics and subspaces on disk at a time)."""
        if not isinstance(remove_when_released, bool):
            raise DatasetError(f"remove_when_released must be true or false, got {remove_when_released!r}")
        self._remove_when_released = remove_when_released
        self._saved_path: str | None = None
        protocol, path = get_protocol_and_path(str(filepath), version)
        self._protocol = protocol
        fs_args = dict(fs_args or {})
        if protocol == "file":
            fs_args.setdefault("auto_mkdir", True)
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **fs_args)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "protocol": self._protocol,
            "version": self._version,
            "remove_when_released": self._remove_when_released,
        }

    def load(self) -> dict[str, np.ndarray]:
        """On the local disk, each array memory-mapped from the archive; elsewhere, each array read
        from the archive straight into its own memory (never the archive as a second copy)."""
        load_path = get_filepath_str(self._get_load_path(), self._protocol)
        if self._protocol == "file":
            return _memory_mapped(load_path)
        with self._fs.open(load_path, mode="rb") as stream:
            with np.load(stream, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}

    def save(self, data: Mapping[str, np.ndarray]) -> None:
        """Streams the arrays into a partial file beside the version's path, then moves it there: a
        crash mid-save leaves no truncated archive for a later run to load. A LayerStream is first
        spilled layer by layer to .npy files beside it (the local disk) or in the temporary folder."""
        if not isinstance(data, Mapping):
            raise DatasetError(f"NpzDataset saves a mapping of names to arrays, got {type(data).__name__}")
        save_path = get_filepath_str(self._get_save_path(), self._protocol)
        partial_path = f"{save_path}.partial"
        spill_parent = None
        if self._protocol == "file":
            spill_parent = os.path.dirname(save_path)
            self._fs.makedirs(spill_parent, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".spill-", dir=spill_parent) as spill:
            arrays = _spilled(data, Path(spill)) if isinstance(data, LayerStream) else data
            with self._fs.open(partial_path, mode="wb") as stream:
                _write_npz(stream, arrays)
            del arrays  # unmaps the spilled files before their folder goes (Windows cannot delete a mapped file)
        self._fs.mv(partial_path, save_path)
        self._saved_path = save_path
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _release(self) -> None:
        super()._release()
        if self._remove_when_released and self._saved_path is not None:
            logger.info("Removing %s: every node of this run that reads it has run (remove_when_released)", self._saved_path)
            self._fs.rm(self._saved_path)
            version_folder = os.path.dirname(self._saved_path)
            if self._version is not None and not self._fs.ls(version_folder):
                self._fs.rmdir(version_folder)
            self._saved_path = None

    def _exists(self) -> bool:
        try:
            load_path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(load_path)

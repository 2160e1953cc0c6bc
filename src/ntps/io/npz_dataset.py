"""A versioned Kedro dataset for a mapping of named numpy arrays, stored as one .npz archive."""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path


class NpzDataset(AbstractVersionedDataset[dict, dict]):
    """Saves dict[str, np.ndarray] with numpy.savez (uncompressed: float64 statistics do not
    compress) and loads it back as a plain dict. Object arrays are refused, so loading never
    unpickles.
    """

    def __init__(
        self,
        *,
        filepath: str | os.PathLike,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
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
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def load(self) -> dict[str, np.ndarray]:
        """Each array is read from the archive straight into its own memory: the archive is never
        held as a second copy (a paper-scale statistics archive is several GB)."""
        load_path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(load_path, mode="rb") as stream:
            with np.load(stream, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}

    def save(self, data: dict[str, np.ndarray]) -> None:
        """Streams the arrays into a partial file beside the version's path, then moves it there: a
        crash mid-save leaves no truncated archive for a later run to load."""
        if not isinstance(data, dict):
            raise DatasetError(f"NpzDataset saves a dict of arrays, got {type(data).__name__}")
        save_path = get_filepath_str(self._get_save_path(), self._protocol)
        partial_path = f"{save_path}.partial"
        with self._fs.open(partial_path, mode="wb") as stream:
            np.savez(stream, **{name: np.asarray(value) for name, value in data.items()})
        self._fs.mv(partial_path, save_path)
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        try:
            load_path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(load_path)

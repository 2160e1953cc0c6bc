"""A versioned Kedro dataset for a LoRA adapter and its head: one folder per version, in peft's format."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from ntps.modeling.adapter_format import LoraAdapter


def _is_folder(path: str) -> bool:
    # A module-level function, not a lambda, so that ParallelRunner can pickle the dataset.
    return Path(path).is_dir()


class LoraAdapterDataset(AbstractVersionedDataset[LoraAdapter, LoraAdapter]):
    """Saves a LoraAdapter as a folder (adapter_config.json and adapter_model.safetensors, which
    peft.PeftModel.from_pretrained reads, and classification_head.safetensors) and loads it back
    with its location set, so that later stages can apply the adapter from there. Local files only:
    peft reads the adapter from a folder path.
    """

    def __init__(
        self, *, filepath: str | os.PathLike, version: Version | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        if "://" in str(filepath):
            raise DatasetError(f"LoraAdapterDataset stores local folders only, got {filepath}")
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(filepath),
            version=version,
            exists_function=_is_folder,
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "version": self._version}

    def load(self) -> LoraAdapter:
        return LoraAdapter.load(self._get_load_path())

    def save(self, data: LoraAdapter) -> None:
        if not isinstance(data, LoraAdapter):
            raise DatasetError(f"LoraAdapterDataset saves a LoraAdapter, got {type(data).__name__}")
        destination = Path(self._get_save_path())
        destination.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the destination and renamed, so a killed save leaves no half adapter.
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
        try:
            data.save(staging)
            staging.rename(destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _exists(self) -> bool:
        try:
            return _is_folder(self._get_load_path())
        except DatasetError:
            return False

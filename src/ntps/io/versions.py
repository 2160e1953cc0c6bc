"""Old versions of the large catalog entries, and their removal.

Kedro keeps every version of a versioned dataset forever, as `<filepath>/<version>/<file name>`
with sortable timestamp versions. The statistics, subspaces, pooled features and adapters of a
paper-scale grid fill a disk within a few runs; `kedro prune-versions` (ntps.cli) removes all but
the newest N versions of each, never the newest one, and never touches the MLflow store.

A version counts only when it holds its file: Kedro loads the newest version folder that does, and
a save killed by a crash or a full disk leaves a folder with only its partial file or staging
folder. Such an unfinished save older than the versions kept is removed; a newer one is left
alone, since it may be a save still running.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ntps.core.errors import NtpsInputError

# The dataset types whose versions are large: per-layer d x d statistics and subspaces, per-text
# pooled features, LoRA adapters.
LARGE_DATASET_TYPES = ("ntps.io.NpzDataset", "ntps.io.LoraAdapterDataset")


@dataclass(frozen=True)
class StaleVersion:
    """One version folder that pruning removes: older than the versions kept, or an unfinished
    save (a folder without its file) older than them."""

    path: Path
    bytes: int
    finished: bool


def large_versioned_folders(catalog: dict[str, Any], project_path: Path) -> list[Path]:
    """The folders holding the versions of every large versioned catalog entry that exists on disk.

    Args:
        catalog: the catalog configuration (entry name or pattern -> its settings).
        project_path: the folder relative file paths start from.
    """
    folders = set()
    for name, spec in catalog.items():
        if not isinstance(spec, dict) or spec.get("type") not in LARGE_DATASET_TYPES or not spec.get("versioned"):
            continue
        pattern = re.sub(r"\{[^{}]*\}", "*", str(spec["filepath"]))  # a dataset factory's placeholders
        if "://" in pattern:
            raise NtpsInputError(f"catalog entry {name!r} is not on the local disk ({pattern}); prune it with its own tools")
        folders.update(path for path in project_path.glob(pattern) if path.is_dir())
    return sorted(folders)


def _size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) if path.is_dir() else path.stat().st_size


def stale_versions(folders: list[Path], keep: int) -> list[StaleVersion]:
    """Every version of each folder older than its newest `keep` finished ones (at least 1, so the
    version Kedro loads is never one); a folder with no finished version loses nothing.

    A version `<folder>/<version>/` is finished when it holds `<folder name>`, the file (or the
    adapter's folder) that the dataset's save moves into place last.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise NtpsInputError(f"keep must be an integer of at least 1 (the newest version is never removed), got {keep!r}")
    stale = []
    for folder in folders:
        versions = sorted(path for path in folder.iterdir() if path.is_dir())
        finished = [version for version in versions if (version / folder.name).exists()]
        kept = finished[-keep:]
        older = [version for version in versions if kept and version < kept[0]]
        stale += [StaleVersion(version, _size(version), version in finished) for version in older]
    return stale


def remove_versions(stale: list[StaleVersion]) -> None:
    """Delete the versions (the caller has listed them and their bytes)."""
    for version in stale:
        shutil.rmtree(version.path)

"""`kedro prune-versions` (ntps.cli, ntps.io.versions): all but the newest N versions of the large
catalog entries go, nothing else does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from kedro.io import Version

from ntps.cli import cli
from ntps.core.errors import NtpsInputError
from ntps.io import NpzDataset
from ntps.io.versions import large_versioned_folders, stale_versions
from tests.conftest import offline_environment

VERSIONS = [f"2026-11-0{day}T10.00.00.000Z" for day in range(1, 6)]


def write_versions(project, relative: str, versions: list[str], file_in_folder: str | None = None) -> None:
    """Finished versions as Kedro lays them out, `<relative>/<version>/<name of relative>`: a file,
    or (an adapter) a folder holding file_in_folder."""
    for version in versions:
        saved = project / relative / version / Path(relative).name
        if file_in_folder:
            saved.mkdir(parents=True)
            (saved / file_in_folder).write_bytes(b"x" * 1000)
        else:
            saved.parent.mkdir(parents=True)
            saved.write_bytes(b"x" * 1000)


def write_unfinished_save(project, relative: str, version: str) -> None:
    """What a killed NpzDataset save leaves: the version folder with the partial archive and its
    spill folder, never the archive itself."""
    folder = project / relative / version
    (folder / ".spill-abc").mkdir(parents=True)
    (folder / f"{Path(relative).name}.partial").write_bytes(b"x" * 500)


@pytest.fixture
def versions_on_disk(project):
    """Three versions of one pair's statistics, one of its subspaces, two of its adapter, three of
    a small table, and an MLflow store, in the project copy's data/ folders."""
    write_versions(project, "data/04_feature/m/a/layer_statistics.npz", VERSIONS[:3])
    write_versions(project, "data/05_model_input/m/a/eigen_subspaces.npz", VERSIONS[:1])
    write_versions(project, "data/06_models/m/a/lora_adapter", VERSIONS[1:3], "adapter_model.safetensors")
    write_versions(project, "data/07_model_output/m/a/ntps_table.parquet", VERSIONS[:3])
    (project / "mlflow.db").write_bytes(b"store")
    return project


def all_files(project):
    return sorted(str(path.relative_to(project)) for path in project.rglob("*") if path.is_file())


def test_stale_versions_are_all_but_the_newest_of_large_entries(versions_on_disk):
    project = versions_on_disk
    catalog = {
        "{model}.{dataset}.layer_statistics": {
            "type": "ntps.io.NpzDataset",
            "filepath": "data/04_feature/{model}/{dataset}/layer_statistics.npz",
            "versioned": True,
        },
        "{model}.{dataset}.eigen_subspaces": {
            "type": "ntps.io.NpzDataset",
            "filepath": "data/05_model_input/{model}/{dataset}/eigen_subspaces.npz",
            "versioned": True,
        },
        "{model}.{dataset}.ntps_table": {
            "type": "pandas.ParquetDataset",
            "filepath": "data/07_model_output/{model}/{dataset}/ntps_table.parquet",
            "versioned": True,
        },
    }
    folders = large_versioned_folders(catalog, project)
    assert [folder.name for folder in folders] == ["layer_statistics.npz", "eigen_subspaces.npz"]
    for keep, expected in ((1, VERSIONS[:2]), (2, VERSIONS[:1]), (3, []), (10, [])):
        assert [version.path.name for version in stale_versions(folders, keep)] == expected
    assert all(version.bytes == 1000 for version in stale_versions(folders, 1))
    for keep in (0, -1, 1.5, True):
        with pytest.raises(NtpsInputError, match="at least 1"):
            stale_versions(folders, keep)


def test_prune_versions_command_lists_then_removes_only_old_large_versions(versions_on_disk, monkeypatch):
    project = versions_on_disk
    monkeypatch.chdir(project)
    before = all_files(project)
    # The command itself, in process; then once through `kedro`, which finds it in ntps.cli.
    dry = CliRunner().invoke(cli, ["prune-versions", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "3 versions, 0.0 MB would be freed" in dry.output
    assert f"would remove data/04_feature/m/a/layer_statistics.npz/{VERSIONS[0]}" in dry.output
    assert all_files(project) == before

    refused = CliRunner().invoke(cli, ["prune-versions", "--keep", "0"])
    assert refused.exit_code != 0 and "at least 1" in refused.output
    assert all_files(project) == before

    pruned = subprocess.run(
        [sys.executable, "-m", "kedro", "prune-versions", "--keep", "1"],
        cwd=project,
        env=offline_environment(),
        capture_output=True,
        text=True,
    )
    assert pruned.returncode == 0, pruned.stderr[-3000:]
    removed = {
        f"data/04_feature/m/a/layer_statistics.npz/{VERSIONS[0]}/layer_statistics.npz",
        f"data/04_feature/m/a/layer_statistics.npz/{VERSIONS[1]}/layer_statistics.npz",
        f"data/06_models/m/a/lora_adapter/{VERSIONS[1]}/lora_adapter/adapter_model.safetensors",
    }
    assert all_files(project) == sorted(set(before) - removed)


def test_unfinished_saves_neither_count_as_the_newest_nor_survive_when_older(project):
    """A save killed by a crash or a full disk leaves a version folder without its file. Kedro
    loads the newest version that has it, so pruning keeps that one; the unfinished folders older
    than the versions kept go, newer ones stay (a save may still be running)."""
    relative = "data/04_feature/m/a/layer_statistics.npz"
    write_unfinished_save(project, relative, VERSIONS[0])
    write_versions(project, relative, VERSIONS[1:3])
    write_unfinished_save(project, relative, VERSIONS[3])
    write_unfinished_save(project, relative, VERSIONS[4])
    folders = [project / relative]
    stale = stale_versions(folders, 1)
    assert [(version.path.name, version.finished) for version in stale] == [(VERSIONS[0], False), (VERSIONS[1], True)]
    assert stale[0].bytes == 500
    assert [version.path.name for version in stale_versions(folders, 2)] == VERSIONS[:1]
    assert [version.path.name for version in stale_versions(folders, 5)] == VERSIONS[:1]

    only_unfinished = "data/05_model_input/m/a/eigen_subspaces.npz"
    write_unfinished_save(project, only_unfinished, VERSIONS[0])
    write_unfinished_save(project, only_unfinished, VERSIONS[1])
    assert stale_versions([project / only_unfinished], 1) == []


def test_after_pruning_kedro_loads_the_archive_it_loaded_before(project, monkeypatch):
    """Two real saves, then a newer save that died half-way: the command removes the older archive
    and the dead save's debris is left (it is newest), and the dataset loads what it loaded before."""
    relative = "data/04_feature/m/a/layer_statistics.npz"
    for number, version in enumerate(VERSIONS[:2]):
        NpzDataset(filepath=str(project / relative), version=Version(None, version)).save({"x": np.full(3, number)})
    write_unfinished_save(project, relative, VERSIONS[2])
    monkeypatch.chdir(project)

    pruned = CliRunner().invoke(cli, ["prune-versions"])

    assert pruned.exit_code == 0, pruned.output
    assert f"removing {relative}/{VERSIONS[0]} " in pruned.output
    assert "1 versions removed" in pruned.output
    assert sorted(path.name for path in (project / relative).iterdir()) == VERSIONS[1:3]
    np.testing.assert_array_equal(
        NpzDataset(filepath=str(project / relative), version=Version(None, None)).load()["x"], [1, 1, 1]
    )

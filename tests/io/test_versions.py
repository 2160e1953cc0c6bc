"""`kedro prune-versions` (ntps.cli, ntps.io.versions): all but the newest N versions of the large
catalog entries go, nothing else does."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from ntps.cli import cli
from ntps.core.errors import NtpsInputError
from ntps.io.versions import large_versioned_folders, stale_versions
from tests.conftest import offline_environment

VERSIONS = ["2026-11-01T10.00.00.000Z", "2026-11-02T10.00.00.000Z", "2026-11-03T10.00.00.000Z"]


def write_versions(project, relative: str, versions: list[str], name: str) -> None:
    for version in versions:
        folder = project / relative / version
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"x" * 1000)


@pytest.fixture
def versions_on_disk(project):
    """Three versions of one pair's statistics, one of its subspaces, three of a small table, and
    an MLflow store, in the project copy's data/ folders."""
    write_versions(project, "data/04_feature/m/a/layer_statistics.npz", VERSIONS, "layer_statistics.npz")
    write_versions(project, "data/05_model_input/m/a/eigen_subspaces.npz", VERSIONS[:1], "eigen_subspaces.npz")
    write_versions(project, "data/06_models/m/a/lora_adapter", VERSIONS[1:], "adapter_model.safetensors")
    write_versions(project, "data/07_model_output/m/a/ntps_table.parquet", VERSIONS, "ntps_table.parquet")
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
        f"data/06_models/m/a/lora_adapter/{VERSIONS[1]}/adapter_model.safetensors",
    }
    assert all_files(project) == sorted(set(before) - removed)

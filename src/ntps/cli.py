"""Project commands for the Kedro CLI: `kedro prune-versions`.

Kedro looks for `run` here too (`python -m ntps`): it is Kedro's own, unchanged.
"""

from __future__ import annotations

from pathlib import Path

import click
from kedro.framework.cli.project import run  # noqa: F401 (the run command `python -m ntps` finds)

from ntps.core.errors import NtpsInputError
from ntps.io.versions import large_versioned_folders, remove_versions, stale_versions
from ntps.run_parameters import config_loader


@click.group(name="ntps")
def cli() -> None:
    """Commands of the ntps project."""


@cli.command("prune-versions")
@click.option("--keep", type=int, default=1, show_default=True, help="Versions to keep per entry, newest first (>= 1).")
@click.option("--dry-run", is_flag=True, help="List what would be removed, remove nothing.")
@click.option("--env", "-e", default=None, help="Configuration environment whose catalog names the entries.")
def prune_versions(keep: int, dry_run: bool, env: str | None) -> None:
    """Remove all but the newest --keep versions of the statistics, subspaces, pooled features
    and adapters under data/. The MLflow store and every other entry are left alone."""
    project_path = Path.cwd()
    try:
        stale = stale_versions(large_versioned_folders(config_loader(project_path, env)["catalog"], project_path), keep)
    except NtpsInputError as error:
        raise click.UsageError(str(error)) from error
    for version in stale:
        click.echo(
            f"{'would remove' if dry_run else 'removing'} {version.path.relative_to(project_path)} "
            f"({version.bytes / 1e6:.1f} MB{'' if version.finished else ', an unfinished save'})"
        )
    total = sum(version.bytes for version in stale) / 1e6
    if dry_run:
        click.echo(f"{len(stale)} versions, {total:.1f} MB would be freed (dry run: nothing removed)")
        return
    remove_versions(stale)
    click.echo(f"{len(stale)} versions removed, {total:.1f} MB freed")

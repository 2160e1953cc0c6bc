"""ntps.runners.DepthFirstRunner with NpzDataset's remove_when_released: one pair's large
intermediates on disk at a time, as conf/paper_grid keeps them."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import Version
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from ntps import settings as project_settings
from ntps.io import NpzDataset
from ntps.runners import DepthFirstRunner
from tests.conftest import REPOSITORY

PAIRS = ("a", "b", "c")


def pair_pipeline(on_disk) -> tuple[Pipeline, list[tuple[str, list[str]]]]:
    """forward -> eigen -> scores per pair and a report of every pair's table; each node records
    its name and the archives on disk (on_disk()) when it runs."""
    runs: list[tuple[str, list[str]]] = []

    def step(name, output):
        def run(*inputs):
            runs.append((name, on_disk()))
            return output(*inputs)

        return run

    nodes = []
    for pair in PAIRS:
        nodes += [
            node(step(f"forward_{pair}", lambda: {"sums": np.ones(3)}), None, f"statistics_{pair}", name=f"forward_{pair}"),
            node(
                step(f"eigen_{pair}", lambda s: {"basis": 2 * s["sums"]}),
                f"statistics_{pair}",
                f"subspaces_{pair}",
                name=f"eigen_{pair}",
            ),
            node(
                step(f"scores_{pair}", lambda s, u: float((s["sums"] * u["basis"]).sum())),
                [f"statistics_{pair}", f"subspaces_{pair}"],
                f"table_{pair}",
                name=f"scores_{pair}",
            ),
        ]
    nodes.append(node(step("report", lambda *tables: sum(tables)), [f"table_{p}" for p in PAIRS], "report", name="report"))
    return Pipeline(nodes), runs


def catalog_on(tmp_path, remove: bool, saved: str = "2026-11-30T00.00.00.000Z") -> DataCatalog:
    version = Version(None, saved)
    datasets = {
        f"{name}_{pair}": NpzDataset(
            filepath=str(tmp_path / f"{name}_{pair}.npz"), version=version, remove_when_released=remove
        )
        for name in ("statistics", "subspaces")
        for pair in PAIRS
    }
    datasets["report"] = MemoryDataset()
    return DataCatalog(datasets=datasets)


def archives(tmp_path) -> list[str]:
    return sorted(path.parent.parent.name.removesuffix(".npz") for path in tmp_path.glob("*.npz/*/*.npz"))


def test_depth_first_runner_keeps_one_pairs_archives_on_disk_at_a_time(tmp_path):
    pipeline, runs = pair_pipeline(lambda: archives(tmp_path))
    catalog = catalog_on(tmp_path, remove=True)
    DepthFirstRunner().run(pipeline, catalog)
    order = [name for name, _ in runs]
    assert order == [f"{stage}_{pair}" for pair in PAIRS for stage in ("forward", "eigen", "scores")] + ["report"]
    for name, on_disk in runs:
        assert {archive.split("_")[1] for archive in on_disk} <= {name.split("_")[-1]}, (name, on_disk)
    assert catalog.load("report") == 3 * 6.0
    assert archives(tmp_path) == [] and not list(tmp_path.glob("*.npz/*"))  # files and version folders gone

    # Kedro's SequentialRunner runs level by level: every pair's statistics exist at once.
    pipeline, runs = pair_pipeline(lambda: archives(tmp_path))
    SequentialRunner().run(pipeline, catalog_on(tmp_path / "sequential", remove=True))
    assert [name for name, _ in runs][:3] == ["forward_a", "forward_b", "forward_c"]


def test_archives_are_kept_unless_asked_and_never_when_the_run_did_not_write_them(tmp_path):
    pipeline, _ = pair_pipeline(lambda: [])
    DepthFirstRunner().run(pipeline, catalog_on(tmp_path / "kept", remove=False))
    assert len(archives(tmp_path / "kept")) == 2 * len(PAIRS)
    # Statistics made by an earlier run are the inputs of this one: read, not removed.
    scoring = pipeline.from_nodes(*[f"eigen_{pair}" for pair in PAIRS])
    DepthFirstRunner().run(scoring, catalog_on(tmp_path / "kept", remove=True, saved="2026-11-30T01.00.00.000Z"))
    statistics = [f"statistics_{pair}" for pair in PAIRS]
    assert archives(tmp_path / "kept") == statistics + [f"subspaces_{pair}" for pair in PAIRS]  # the first run's
    assert len(list((tmp_path / "kept").glob("statistics_a.npz/*"))) == 1
    with pytest.raises(Exception, match="remove_when_released must be true or false"):
        NpzDataset(filepath=str(tmp_path / "x.npz"), remove_when_released="yes")


@pytest.mark.parametrize(("runtime_params", "removed"), [({}, True), ({"remove_large_intermediates": False}, False)])
def test_paper_grid_removes_only_the_large_archives_unless_told_to_keep_them(runtime_params, removed):
    def catalog(env):
        settings = project_settings.CONFIG_LOADER_ARGS
        loader = OmegaConfigLoader(conf_source=str(REPOSITORY / "conf"), env=env, runtime_params=runtime_params, **settings)
        return loader["catalog"]

    base, paper_grid = catalog("local"), catalog("paper_grid")
    overridden = {name for name, entry in paper_grid.items() if "remove_when_released" in entry}
    assert {name.split(".")[-1] for name in overridden} == {
        "layer_statistics",
        "layer_statistics_shard_{shard}",
        "pooled_features_shard_{shard}",
        "eigen_subspaces",
    }
    assert any("after_lora" in name for name in overridden)
    for name in overridden:
        entry = dict(paper_grid[name])
        assert entry.pop("remove_when_released") is removed
        assert entry == base[name]  # the same dataset as conf/base's, only removed when released

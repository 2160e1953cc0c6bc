"""The DAG's shape comes from the running session's environment and parameters (ntps.grid)."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import kedro_run

pytestmark = pytest.mark.end_to_end


def test_kedro_run_env_builds_that_environments_dag(project, model_cache):
    (project / "conf/narrow").mkdir()
    (project / "conf/narrow/parameters.yml").write_text(
        yaml.safe_dump({"run": {"models": ["smollm2_135m"], "datasets": ["election_tweets"]}})
    )
    narrow = kedro_run(project, model_cache, pipeline="data_ingestion", extra_args=["--env", "narrow"])
    assert narrow.returncode == 0, narrow.stderr[-3000:]
    assert sorted(path.name for path in (project / "data/01_raw").iterdir()) == ["election_tweets"]

    # The paper grid's datasets come from a hub, which the tests never reach: the run must try
    # them (their DAG was built) and stop with the error that says how to fetch one.
    paper = kedro_run(project, model_cache, pipeline="data_ingestion", extra_args=["--env", "paper_grid"])
    assert paper.returncode != 0
    assert "HF_HUB_OFFLINE" in paper.stderr and "datasets.load_dataset" in paper.stderr, paper.stderr[-3000:]
    assert sorted(path.name for path in (project / "data/01_raw").iterdir()) == ["election_tweets"]


def test_pipelines_built_outside_a_session_read_the_environment_from_disk(project, monkeypatch):
    (project / "conf/local/parameters.yml").write_text(
        yaml.safe_dump({"run": {"models": ["smollm2_135m"], "datasets": ["reuters_r8", "newsgroups20"]}})
    )
    monkeypatch.chdir(project)
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    from ntps.grid import configured_grid

    assert configured_grid().datasets == ("reuters_r8", "newsgroups20")
    monkeypatch.setenv("KEDRO_ENV", "paper_grid")
    assert len(configured_grid().pairs()) == 96

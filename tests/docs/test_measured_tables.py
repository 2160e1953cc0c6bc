"""The measured tables of docs/ are what scripts/measured_tables.py renders from benchmarks/results/,
so a figure in the pages is never typed by hand."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from tests.conftest import REPOSITORY

# Marked tables without results yet: each needs its script to write a results file before it can be
# rendered. The set may only shrink; it is empty.
NOT_YET_RENDERED: set[str] = set()


@pytest.fixture(scope="module")
def measured_tables():
    spec = importlib.util.spec_from_file_location("measured_tables", REPOSITORY / "scripts" / "measured_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_rendered_table_equals_its_results(measured_tables):
    assert measured_tables.render(check=True) == 0, "run `.venv/bin/python scripts/measured_tables.py render`"


def test_only_the_listed_tables_are_not_rendered_yet(measured_tables):
    unrendered = set()
    ids = set()
    for page in (REPOSITORY / "docs").rglob("*.md"):
        text = page.read_text(encoding="utf-8")
        unrendered |= set(measured_tables.rendered_page(text)[1])
        ids |= {match.group(2) for match in measured_tables.MARKED.finditer(text)}
    assert unrendered == NOT_YET_RENDERED
    assert set(measured_tables.RENDERERS) <= ids, "a renderer whose table no page shows"


def test_a_table_is_rendered_from_its_results_and_a_stale_page_is_found(measured_tables, tmp_path, monkeypatch):
    monkeypatch.setattr(measured_tables, "RESULTS", tmp_path)
    (tmp_path / "default_run").mkdir()
    pd.DataFrame(
        {"dataset": ["b", "a", "a", "b"], "layer": 29, "k": [29, 29, 144, 144], "label_variance_kept": [0.5, 0.25, 0.75, 1]}
    ).to_csv(tmp_path / "default_run" / "label_variance_kept.csv", index=False)
    stale = "before\n<!-- measured: scores-label-variance-kept-default -->\n| old |\n<!-- /measured -->\nafter\n"
    page, unrendered = measured_tables.rendered_page(stale)
    assert unrendered == []
    assert page == (
        "before\n<!-- measured: scores-label-variance-kept-default -->\n"
        "| dataset | k = 29 | k = 144 |\n|---|---|---|\n| a | 0.25 | 0.75 |\n| b | 0.50 | 1.00 |\n"
        "<!-- /measured -->\nafter\n"
    )
    assert measured_tables.rendered_page(page)[0] == page


def test_the_lora_run_time_is_that_of_the_latest_finished_lora_run(measured_tables, tmp_path):
    import mlflow

    uri, previous_uri = f"sqlite:///{tmp_path / 'mlflow.db'}", mlflow.get_tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("ntps")

    def record(name: str, status: str, start_ms: int, end_ms: int, stage_seconds: dict[str, float]) -> None:
        run = client.create_run(experiment, start_time=start_ms, run_name=name)
        for stage, seconds in stage_seconds.items():
            client.log_metric(run.info.run_id, f"stage_seconds.{stage}", seconds)
        client.set_terminated(run.info.run_id, status=status, end_time=end_ms)

    record("lora", "FINISHED", 100_000, 600_000, {"lora_finetuning": 400.0, "hidden_statistics": 100.0})
    record("ntps", "FINISHED", 700_000, 800_000, {"hidden_statistics": 50.0})
    record("lora", "FINISHED", 1_000_000, 4_000_000, {"lora_finetuning": 2400.0, "lora_reports": 30.0})
    record("lora", "FAILED", 5_000_000, 5_100_000, {"lora_finetuning": 60.0})
    try:
        table = measured_tables.lora_run_time(uri)
    finally:
        mlflow.set_tracking_uri(previous_uri)
    assert table.set_index("stage")["seconds"].to_dict() == {
        "lora_finetuning": 2400.0,
        "lora_reports": 30.0,
        "whole run": 3000.0,
    }

"""The workaround that hands a session's parameters to the pipeline builders (ntps.run_parameters)."""

from __future__ import annotations

from kedro.framework.project import pipelines

from ntps import run_parameters
from ntps.run_parameters import building_with, use_session_parameters


def test_kedros_private_registry_still_has_what_the_reset_reads():
    """use_session_parameters reads these two private attributes; a Kedro release without them
    fails here before it fails in a run."""
    assert hasattr(pipelines, "_requested_pipelines") and hasattr(pipelines, "_pipelines_module")


def test_new_parameters_rebuild_the_pipelines_and_keep_the_runs_request(monkeypatch):
    monkeypatch.setattr(run_parameters, "_session_parameters", None)
    module, requested = pipelines._pipelines_module, pipelines._requested_pipelines
    try:
        pipelines.set_requested(["ntps"])
        pipelines._is_data_loaded = True
        use_session_parameters({"run": {"models": ["a"]}})
        assert not pipelines._is_data_loaded  # built again on the next access
        assert pipelines._requested_pipelines == ["ntps"]
        pipelines._is_data_loaded = True
        use_session_parameters({"run": {"models": ["a"]}})
        assert pipelines._is_data_loaded  # the same parameters: nothing rebuilt
    finally:
        pipelines.configure(module)
        pipelines.set_requested(requested)


def test_building_with_restores_the_previous_parameters(monkeypatch):
    monkeypatch.setattr(run_parameters, "_session_parameters", {"run": "outer"})
    with building_with({"run": "inner"}):
        assert run_parameters.run_parameters() == {"run": "inner"}
    assert run_parameters.run_parameters() == {"run": "outer"}

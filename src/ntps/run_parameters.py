"""The parameters that shape the DAG, and the one workaround that hands them to the pipeline builders.

Kedro builds a project's pipelines with `register_pipelines()`, which takes no arguments: no public
interface gives it the running session's environment (`--env`) or its `--params`. Yet this project's
DAG depends on them: which model x dataset pairs run (`run:`) and how many shards a forward pass has
(`forward_pass.shards`). So `ntps.hooks.RunParametersHook` hands the session's parameters over here when
the session creates its context, which `kedro run` does before it builds any pipeline, and
`use_session_parameters` makes Kedro build its pipelines again when a later session in the same
process (a notebook's, a test's) brings other parameters. That reset reads two private attributes of
Kedro's pipelines registry (`_requested_pipelines`, `_pipelines_module`), which is why it lives here,
alone: `tests/test_run_parameters.py` fails first if a Kedro release changes them.

Outside a session (`kedro viz`, a notebook importing a pipeline) the parameters are read from conf/base
plus $KEDRO_ENV (default local).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kedro.framework.project import settings


def config_loader(project_path: Path | None = None, env: str | None = None):
    """The project's configuration as `kedro run` reads it: conf/base, then env (default $KEDRO_ENV,
    else local), from disk."""
    return settings.CONFIG_LOADER_CLASS(
        conf_source=str((project_path or Path.cwd()) / settings.CONF_SOURCE),
        env=env or os.environ.get("KEDRO_ENV"),
        **settings.CONFIG_LOADER_ARGS,
    )


def load_parameters(project_path: Path | None = None, env: str | None = None) -> dict[str, Any]:
    """conf/base's parameters merged with those of env (default $KEDRO_ENV, else local), from disk."""
    return config_loader(project_path, env)["parameters"]


_session_parameters: dict[str, Any] | None = None


def use_session_parameters(parameters: dict[str, Any] | None) -> None:
    """Build the pipelines from these parameters (the running session's; None: read conf from disk).

    Kedro keeps the pipelines it built for the life of the process; when a later session brings
    other parameters, they are built again on their next access.
    """
    global _session_parameters
    if parameters == _session_parameters:
        return
    _session_parameters = parameters
    from kedro.framework.project import pipelines

    # configure() is Kedro's documented reset; it also forgets which pipelines the run asked for
    # (set just before the context is created), so that request is handed back.
    requested = pipelines._requested_pipelines
    pipelines.configure(pipelines._pipelines_module)
    pipelines.set_requested(requested)


@contextlib.contextmanager
def building_with(parameters: dict[str, Any]) -> Iterator[None]:
    """Within the block, pipelines are built from these parameters, as a session with them would
    build them; afterwards from the previous ones."""
    previous = _session_parameters
    use_session_parameters(parameters)
    try:
        yield
    finally:
        use_session_parameters(previous)


def run_parameters() -> dict[str, Any]:
    """The parameters that shape the DAG: the current session's, else read from disk."""
    return _session_parameters if _session_parameters is not None else load_parameters()

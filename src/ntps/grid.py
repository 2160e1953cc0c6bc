"""Which models and datasets a run covers, read from the parameters when pipelines are built.

The shape of the DAG (one namespaced sub-pipeline per model x dataset, the shard count) comes from
the parameters of the session that builds it: `RunParametersHook` hands them over when the session
creates its context, which `kedro run` does before it builds any pipeline, so `--env` and `--params`
shape the DAG as they shape the run. Outside a session (kedro viz, a notebook importing a
pipeline) they are read from conf/base plus $KEDRO_ENV (default local).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.framework.project import settings
from kedro.pipeline import Pipeline, node

from ntps.core.errors import NtpsInputError


@dataclass(frozen=True)
class RunGrid:
    models: tuple[str, ...]
    datasets: tuple[str, ...]

    def pairs(self) -> list[tuple[str, str]]:
        return [(model, dataset) for model in self.models for dataset in self.datasets]


def load_parameters(project_path: Path | None = None, env: str | None = None) -> dict[str, Any]:
    """conf/base's parameters merged with those of env (default $KEDRO_ENV, else local), from disk."""
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str((project_path or Path.cwd()) / settings.CONF_SOURCE),
        env=env or os.environ.get("KEDRO_ENV"),
        **settings.CONFIG_LOADER_ARGS,
    )
    return loader["parameters"]


_session_parameters: dict[str, Any] | None = None


class RunParametersHook:
    """Hands the session's parameters (its environment's, with --params) to the pipeline builders.

    Kedro builds the pipelines at the first access of `kedro.framework.project.pipelines`, which a
    run makes after after_context_created; reading the raw parameters here (not context.params,
    whose validation would build the pipelines first) keeps that order.
    """

    @hook_impl
    def after_context_created(self, context) -> None:
        global _session_parameters
        _session_parameters = context.config_loader["parameters"]


def run_parameters() -> dict[str, Any]:
    """The parameters that shape the DAG: the current session's, else read from disk."""
    return _session_parameters if _session_parameters is not None else load_parameters()


def grid_from_parameters(parameters: dict[str, Any]) -> RunGrid:
    """The `run:` selection, checked against the `models:` and `datasets:` registries."""
    run = parameters.get("run") or {}
    grid = RunGrid(models=tuple(run.get("models") or ()), datasets=tuple(run.get("datasets") or ()))
    if not grid.models or not grid.datasets:
        raise NtpsInputError("parameters `run.models` and `run.datasets` must each list at least one name")
    for kind, names in (("models", grid.models), ("datasets", grid.datasets)):
        registry = parameters.get(kind) or {}
        unknown = [name for name in names if name not in registry]
        if unknown:
            raise NtpsInputError(f"run.{kind} names {unknown}, which are not in the `{kind}:` registry {sorted(registry)}")
        bad = [name for name in names if not name.isidentifier()]
        if bad:
            raise NtpsInputError(f"{kind} names must be identifiers (they become namespaces), got {bad}")
    return grid


def configured_grid() -> RunGrid:
    return grid_from_parameters(run_parameters())


def bind(func: Callable, **bound: Any) -> Callable:
    """func with some keyword arguments fixed, keeping func's name for Kedro and kedro-viz."""
    return functools.update_wrapper(functools.partial(func, **bound), func)


def pipeline_per_entry(
    template: Pipeline, registry: str, names: tuple[str, ...], shared_parameters: tuple[str, ...] = ()
) -> Pipeline:
    """One copy of a stage per registry entry (a model or a dataset), in namespace "<name>".

    The template reads its entry as `params:<singular of registry>`, e.g. `params:dataset` is
    `params:datasets.<name>`; shared_parameters are used as they are, not namespaced.
    """
    entry = registry.removesuffix("s")
    return Pipeline(
        [
            Pipeline(
                template,
                namespace=name,
                parameters={
                    f"params:{entry}": f"params:{registry}.{name}",
                    **{f"params:{shared}": f"params:{shared}" for shared in shared_parameters},
                },
            )
            for name in names
        ]
    )


@dataclass(frozen=True)
class PairStage:
    """A stage as a template for one model x dataset pair, copied into a namespace per pair.

    Attributes:
        make_template: (model, dataset) -> the stage's Pipeline, with un-namespaced names.
        shared_inputs: template input -> catalog name pattern with {model} and {dataset}, for
            inputs produced outside the pair's namespace (the dataset's texts, the model's card).
        parameters: parameter names used as they are, not namespaced.
    """

    make_template: Callable[[str, str], Pipeline]
    shared_inputs: Mapping[str, str] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()

    def for_pair(
        self, model: str, dataset: str, namespace: str | None = None, inputs: Mapping[str, str] | None = None
    ) -> Pipeline:
        """The stage of one pair, in namespace (default "<model>.<dataset>").

        Args:
            inputs: more template input -> catalog name patterns, over shared_inputs; those the
                template does not take are ignored, so one mapping serves a chain of stages (a
                stage rerun in another namespace reads the pair's own tokenized texts).
        """
        template = self.make_template(model, dataset)
        free_inputs = template.inputs()
        patterns = {
            name: pattern for name, pattern in {**self.shared_inputs, **(inputs or {})}.items() if name in free_inputs
        }
        return Pipeline(
            template,
            namespace=namespace or f"{model}.{dataset}",
            inputs={name: pattern.format(model=model, dataset=dataset) for name, pattern in patterns.items()},
            parameters={f"params:{name}": f"params:{name}" for name in self.parameters},
        )

    def pipeline(self) -> Pipeline:
        """The stage of every pair of the configured grid."""
        return Pipeline([self.for_pair(model, dataset) for model, dataset in configured_grid().pairs()])


def node_stage(
    func: Callable,
    inputs: list[str],
    outputs: str | list[str],
    shared_inputs: Mapping[str, str] | None = None,
    parameters: tuple[str, ...] = (),
    pass_pair: bool = False,
) -> PairStage:
    """A stage of one node per pair, named after func; pass_pair gives func the pair as keyword
    arguments model= and dataset= (to label its output rows)."""

    def template(model: str, dataset: str) -> Pipeline:
        bound = bind(func, model=model, dataset=dataset) if pass_pair else func
        return Pipeline([node(bound, inputs, outputs, name=func.__name__)])

    return PairStage(template, shared_inputs or {}, parameters)

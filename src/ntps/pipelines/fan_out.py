"""The run's fan-out: which models and datasets it covers, and the one way a stage is copied per
model, per dataset or per model x dataset pair.

A stage's `template` is its un-namespaced pipeline: it reads and writes plain names
("tokenized_texts", "params:forward_pass"). `per_entry` copies a template per model or dataset into
namespace "<name>"; `per_pair` copies a pair template per pair into namespace "<model>.<dataset>",
wiring the pair's shared inputs to the dataset's texts and the model's card; `per_text_sample`
copies the forward pass once per model and text sample (label views of the same texts share one).
Parameters stay global. The composed `ntps` pipeline draws the whole fan-out.

The models and datasets come from the parameters of the session that builds the pipelines:
`ntps.hooks.RunParametersHook` hands them over when the session creates its context, which
`kedro run` does before it builds any pipeline, so `--env` and `--params` shape the DAG as they
shape the run. Outside a session (kedro viz, a notebook importing a pipeline) they are read from
conf/base plus $KEDRO_ENV (default local).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from kedro.framework.project import settings
from kedro.pipeline import Pipeline

from ntps.core.errors import NtpsInputError

# A pair's inputs made outside its namespace, by the per-entry stages.
PAIR_INPUTS = {"labeled_texts": "{dataset}.labeled_texts", "language_model_card": "{model}.language_model_card"}
# Dataset keys that label a text but never drop one: datasets whose entries differ only in these
# (label views of one corpus) hold the same texts, sampled alike, and share one forward pass.
LABEL_KEYS = ("label_column", "label_pattern")


@dataclass(frozen=True)
class RunSelection:
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    # The datasets grouped by the texts they hold, in run order: each group is one forward pass.
    text_samples: tuple[tuple[str, ...], ...] = ()

    def pairs(self) -> list[tuple[str, str]]:
        return [(model, dataset) for model in self.models for dataset in self.datasets]


def text_sample_name(views: tuple[str, ...]) -> str:
    """A text sample's namespace: its dataset's name, or its label views' names joined by "__"."""
    return "__".join(views)


def text_samples(datasets: tuple[str, ...], registry: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
    """The datasets grouped by identical entries once LABEL_KEYS are set aside, in run order."""
    samples: dict[str, list[str]] = {}
    for name in datasets:
        texts = {key: value for key, value in (registry[name] or {}).items() if key not in LABEL_KEYS}
        samples.setdefault(json.dumps(texts, sort_keys=True, default=str), []).append(name)
    return tuple(tuple(views) for views in samples.values())


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


def use_session_parameters(parameters: dict[str, Any]) -> None:
    """Build the pipelines from these parameters (the running session's) instead of reading conf.

    Kedro keeps the pipelines it built for the life of the process; when a later session (a
    notebook's, a test's) brings other parameters, they are built again on their next access.
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


def run_parameters() -> dict[str, Any]:
    """The parameters that shape the DAG: the current session's, else read from disk."""
    return _session_parameters if _session_parameters is not None else load_parameters()


def selection_from_parameters(parameters: dict[str, Any]) -> RunSelection:
    """The `run:` selection, checked against the `models:` and `datasets:` registries."""
    run = parameters.get("run") or {}
    selection = RunSelection(models=tuple(run.get("models") or ()), datasets=tuple(run.get("datasets") or ()))
    if not selection.models or not selection.datasets:
        raise NtpsInputError("parameters `run.models` and `run.datasets` must each list at least one name")
    for kind, names in (("models", selection.models), ("datasets", selection.datasets)):
        registry = parameters.get(kind) or {}
        unknown = [name for name in names if name not in registry]
        if unknown:
            raise NtpsInputError(f"run.{kind} names {unknown}, which are not in the `{kind}:` registry {sorted(registry)}")
        bad = [name for name in names if not name.isidentifier()]
        if bad:
            raise NtpsInputError(f"{kind} names must be identifiers (they become namespaces), got {bad}")
    return dataclasses.replace(selection, text_samples=text_samples(selection.datasets, parameters["datasets"]))


def run_selection() -> RunSelection:
    """The models and datasets of this run."""
    return selection_from_parameters(run_parameters())


def bind(func: Callable, **bound: Any) -> Callable:
    """func with some keyword arguments fixed, keeping func's name for Kedro and kedro-viz."""
    return functools.update_wrapper(functools.partial(func, **bound), func)


def _global_parameters(template: Pipeline, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """Every parameter the template reads, mapped to itself so namespacing leaves it global."""
    return {name: name for name in template.inputs() if name.startswith("params:") and name not in exclude}


def per_entry(template: Pipeline, registry: str) -> Pipeline:
    """One copy of template per run entry of registry ("models" or "datasets"), in namespace "<name>".

    The template reads its entry as `params:<singular of registry>`, e.g. `params:dataset` becomes
    `params:datasets.<name>`.
    """
    entry = f"params:{registry.removesuffix('s')}"
    names = getattr(run_selection(), registry)
    shared = _global_parameters(template, exclude=(entry,))
    return Pipeline(
        [Pipeline(template, namespace=name, parameters={entry: f"params:{registry}.{name}", **shared}) for name in names]
    )


def per_text_sample(template: Callable[..., Pipeline]) -> Pipeline:
    """One copy of template(model, *views) per model and text sample of the run (RunSelection.
    text_samples), in namespace "<model>.<sample>" (text_sample_name).

    A one-dataset sample is copied as per_pair copies a pair. A template of several label views
    names each view's inputs and outputs "<view>.<name>" (view-prefixed), and they are wired to the
    pair's own "<model>.<view>.<name>" (or, for a pair input, to its PAIR_INPUTS name), so the
    stages after it see one pair per view, as if each view had had its own forward pass. Every
    stage up to the forward pass runs per text sample, so that no view's namespace is interrupted
    by the shared node (Kedro warns of such namespaces and cannot group their nodes).
    """
    copies = []
    selection = run_selection()
    for model in selection.models:
        for views in selection.text_samples:
            sample = template(model, *views)
            wired = {}
            for name in sample.inputs() | sample.outputs():
                view, _, base = name.partition(".")
                if view in views and base:
                    wired[name] = _view_name(model, view, base)
                elif name in PAIR_INPUTS:  # a one-dataset template's plain pair input
                    wired[name] = _view_name(model, views[0], name)
            copies.append(
                Pipeline(
                    sample,
                    namespace=f"{model}.{text_sample_name(views)}",
                    inputs={name: target for name, target in wired.items() if name in sample.inputs()},
                    outputs={name: target for name, target in wired.items() if name in sample.outputs()},
                    parameters=_global_parameters(sample),
                )
            )
    return Pipeline(copies)


def _view_name(model: str, view: str, name: str) -> str:
    """Where a view-prefixed name of a text sample's template lives: a pair input made outside the
    pair (PAIR_INPUTS, e.g. the view's labeled texts), else the pair's own "<model>.<view>.<name>"."""
    return PAIR_INPUTS[name].format(model=model, dataset=view) if name in PAIR_INPUTS else f"{model}.{view}.{name}"


def per_pair(
    template: Callable[[str, str], Pipeline],
    namespace: str = "{model}.{dataset}",
    inputs: Mapping[str, str] | None = None,
) -> Pipeline:
    """One copy of template(model, dataset) per pair of the run, in namespace (a pattern).

    Args:
        template: (model, dataset) -> the pair's un-namespaced pipeline (the pair is an argument for
            nodes that label their rows with it).
        namespace: the copy's namespace, with {model} and {dataset}.
        inputs: template input -> catalog name pattern with {model} and {dataset}, over PAIR_INPUTS;
            those the template does not take are ignored, so one mapping serves a chain of stages.
    """
    copies = []
    for model, dataset in run_selection().pairs():
        pair_template = template(model, dataset)
        free_inputs = pair_template.inputs()
        patterns = {name: pattern for name, pattern in {**PAIR_INPUTS, **(inputs or {})}.items() if name in free_inputs}
        copies.append(
            Pipeline(
                pair_template,
                namespace=namespace.format(model=model, dataset=dataset),
                inputs={name: pattern.format(model=model, dataset=dataset) for name, pattern in patterns.items()},
                parameters=_global_parameters(pair_template),
            )
        )
    return Pipeline(copies)


STAGE_TAG_PREFIX = "stage."


def stage_tag(stage: ModuleType) -> str:
    """The tag a composed pipeline gives every node of a stage folder: "stage.<folder>"."""
    return STAGE_TAG_PREFIX + stage.__name__.rsplit(".", 1)[-1]


def compose(stages: tuple[ModuleType, ...]) -> Pipeline:
    """The stage folders' pipelines joined by their catalog names, each node tagged with its
    stage (stage_tag), so that timings are reported per stage (ntps.hooks) and
    `kedro run --tags stage.probes` runs one stage of the composed DAG."""
    return Pipeline([Pipeline(stage.create_pipeline(), tags=stage_tag(stage)) for stage in stages])

"""How a stage is copied per model, per dataset, per text sample or per model x dataset pair.

A stage's `template` is its un-namespaced pipeline: it reads and writes plain names
("tokenized_texts", "params:forward_pass"). `per_entry` copies a template per model or dataset into
namespace "<name>"; `per_pair` copies a pair template per pair into namespace "<model>.<dataset>",
wiring the pair's shared inputs to the dataset's texts and the model's card; `per_text_sample`
copies the forward pass once per model and text sample (label views of the same texts share one).
Parameters stay global. Which models, datasets and text samples there are is the run's selection
(`ntps.pipelines.run_selection`); the composed `ntps` pipeline draws the whole fan-out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from kedro.pipeline import Pipeline

from ntps.pipelines.run_selection import run_selection, text_sample_name

# A pair's inputs made outside its namespace, by the per-entry stages.
PAIR_INPUTS = {"labeled_texts": "{dataset}.labeled_texts", "language_model_card": "{model}.language_model_card"}


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

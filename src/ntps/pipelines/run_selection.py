"""Which models, datasets and text samples a run covers: the `run:` selection, checked against the
registries, with label views of the same texts grouped so that they share one forward pass."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ntps.core.errors import NtpsInputError
from ntps.run_parameters import run_parameters
from ntps.sources.language_models import MODEL_KEYS
from ntps.sources.text_datasets import DATASET_KEYS

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


def check_entry_keys(kind: str, name: str, entry: Mapping[str, Any], allowed: Mapping[str, tuple[str, ...]]) -> None:
    """Stops on a key the entry's source does not read (a misspelt optional key would otherwise be
    ignored silently), naming it and the keys allowed; allowed maps "common" and each source to keys."""
    source = entry.get("source")
    if source not in allowed:
        sources = sorted(set(allowed) - {"common"})
        raise NtpsInputError(f"{kind}.{name}: source must be one of {sources}, got {source!r}")
    keys = (*allowed["common"], *allowed[source])
    unknown = sorted(set(entry) - set(keys))
    if unknown:
        raise NtpsInputError(
            f"{kind}.{name}: unknown key(s) {unknown} for source {source}; the keys allowed are {sorted(keys)}"
        )


def selection_from_parameters(parameters: dict[str, Any]) -> RunSelection:
    """The `run:` selection, checked against the `models:` and `datasets:` registries, and the
    selected entries' keys against those their source reads."""
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
        for name in names:
            check_entry_keys(kind, name, registry[name] or {}, {"models": MODEL_KEYS, "datasets": DATASET_KEYS}[kind])
    return dataclasses.replace(selection, text_samples=text_samples(selection.datasets, parameters["datasets"]))


def run_selection() -> RunSelection:
    """The models and datasets of this run."""
    return selection_from_parameters(run_parameters())


def _where(entry: Mapping[str, Any]) -> str:
    """Where an entry is loaded from, in words."""
    source = entry.get("source")
    if source == "huggingface":
        return f"Hugging Face id {entry['hf_id']}" + (f" ({entry['hf_config']})" if entry.get("hf_config") else "")
    if source == "local":
        return f"local {entry['path']}"
    if source == "embedded_gguf":
        return f"embedded GGUF {entry['gguf_file']} from package {entry['package']}"
    return f"embedded {entry.get('embedded_name')}"


def run_plan(parameters: dict[str, Any]) -> list[str]:
    """One line per model and dataset a run loads, and from where."""
    selection = selection_from_parameters(parameters)
    return [
        *(f"model {name}: {_where(parameters['models'][name])}" for name in selection.models),
        *(f"dataset {name}: {_where(parameters['datasets'][name])}" for name in selection.datasets),
    ]

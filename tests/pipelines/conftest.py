"""Stages run in memory, as the model Kedro projects test them: each stage's own pipeline, fanned
out over a small run grid (a tiny random Llama with a character tokenizer, four embedded datasets),
on a DataCatalog of MemoryDatasets with SequentialRunner."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from ntps.pipelines.ntps.pipeline import STAGES
from ntps.run_parameters import building_with, load_parameters
from tests.conftest import REPOSITORY

MODEL = "tiny_llama"
# The clothing reviews by rating and by recommendation are two label views of the same texts: they
# share one forward pass (hidden_statistics), and every later stage sees one pair per view.
DATASETS = ["rotten_tomatoes", "election_tweets", "clothing_ratings", "clothing_recommended"]
SHARED_VIEWS = ("clothing_ratings", "clothing_recommended")


def parameter(parameters: dict[str, Any], dotted: str) -> Any:
    value = parameters
    for key in dotted.split("."):
        value = value[key]
    return value


def build(stage: types.ModuleType, parameters: dict[str, Any], **kwargs):
    """The stage's pipeline as a run with these parameters builds it."""
    with building_with(parameters):
        return stage.create_pipeline(**kwargs)


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner does not empty once its last consumer has run, so a test reads
    every intermediate."""

    def _release(self) -> None:
        pass


def run_in_memory(pipeline, parameters: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Run pipeline on MemoryDatasets: its free inputs from data and the parameters; returns every
    dataset it writes."""
    datasets = {}
    for name in pipeline.inputs():
        value = parameter(parameters, name.removeprefix("params:")) if name.startswith("params:") else data[name]
        datasets[name] = KeptDataset(value, copy_mode="assign")
    for name in pipeline.all_outputs():
        datasets[name] = KeptDataset(copy_mode="assign")
    catalog = DataCatalog(datasets=datasets)
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog[name].load() for name in pipeline.all_outputs()}


@pytest.fixture(scope="session")
def stage_parameters(tmp_path_factory, tiny_model) -> dict[str, Any]:
    """conf/base's parameters for a small run of the tiny model on three embedded datasets."""
    parameters = load_parameters(REPOSITORY)
    parameters["run"] = {"models": [MODEL], "datasets": DATASETS}
    parameters["models"][MODEL] = {"source": "local", "path": str(tiny_model)}
    parameters["sampling"]["max_texts"] = {"train": 48, "test": 16}
    parameters["tokenization"]["max_tokens"] = 24
    parameters["forward_pass"]["batch_size"] = 8
    parameters["model_cache_dir"] = str(tmp_path_factory.mktemp("model_cache"))
    return parameters


@pytest.fixture(scope="session")
def stage_data(stage_parameters) -> dict[str, Any]:
    """Every output of the ntps pipeline's stages, each stage run in memory on its predecessors'."""
    data: dict[str, Any] = {}
    for stage in STAGES:  # the ntps pipeline's stages, in the order they feed each other
        data.update(run_in_memory(build(stage, stage_parameters), stage_parameters, data))
    return data


def tiny_folder(parameters: dict[str, Any]) -> Path:
    return Path(parameters["models"][MODEL]["path"])

"""Shared fixtures: an isolated copy of the Kedro project, and a way to `kedro run` it offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

# Tests never reach a hub: set before anything imports huggingface_hub, datasets or transformers.
os.environ["HF_HUB_OFFLINE"] = "1"
if "PYTEST_XDIST_WORKER" in os.environ:
    # Each pytest-xdist worker (and every `kedro run` it starts) computes on one thread: two workers
    # then fill the two cores, where two multi-threaded BLAS pools would oversubscribe them and spin.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DO_NOT_TRACK"] = "true"

REPOSITORY = Path(__file__).resolve().parents[1]


def peak_traced_bytes(run: Callable[[], object]) -> int:
    """The most memory run() held at once, as traced by tracemalloc (numpy reports its array
    buffers to it; memory-mapped files are not allocations)."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


DATA_LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)

# Small enough for two CPU cores; everything else is the embedded default configuration.
SMALL_RUN_PARAMS = {
    "sampling.max_texts.train": 24,
    "sampling.max_texts.test": 8,
    "tokenization.max_tokens": 16,
    "forward_pass.batch_size": 8,
    # The released code's float32 procedure costs about 1 s per layer at d = 576, most of a small
    # run; the tests that check it switch it on (test_end_to_end.py).
    "ntps_scores.released_code": False,
}


def offline_environment() -> dict[str, str]:
    # COLUMNS keeps rich's log lines whole, so tests can read node names from them.
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "true", "COLUMNS": "400"}


# The longest end-to-end tests, started first: with two pytest-xdist workers (the README's test
# command) the slow tests then overlap instead of one of them running alone at the end.
RUN_FIRST = (
    "test_ntps_run_covers_every_layer_and_k",
    "test_lora_and_from_scratch_pipelines_end_to_end",
    "test_changed_nodes_runner_reruns_what_a_change_reaches_and_finishes_a_killed_run",
    "test_a_rerun_writes_new_versions_and_the_notebook_reads_the_latest",
)


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(RUN_FIRST)}
    items.sort(key=lambda item: (rank.get(item.name, len(rank)), item.get_closest_marker("end_to_end") is None))


@pytest.fixture(scope="session")
def shared_folder(tmp_path_factory, worker_id) -> Path:
    """A folder every pytest-xdist worker of this run sees (the session's own without xdist), for
    the models the tests convert once."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if worker_id != "master" else root


def once(folder: Path, make) -> Path:
    """folder, made by make(folder) by the first worker that needs it while the others wait."""
    from filelock import FileLock

    with FileLock(str(folder) + ".lock"):
        if not (folder / "done").exists():
            folder.mkdir(parents=True, exist_ok=True)
            make(folder)
            (folder / "done").touch()
    return folder


@pytest.fixture(scope="session")
def model_cache(shared_folder) -> Path:
    """One GGUF -> safetensors conversion per test run, shared by every run and worker."""
    return shared_folder / "converted_models"


@pytest.fixture(scope="session")
def embedded_model(model_cache) -> tuple[str, dict]:
    """(location, spec) of the embedded default model, converted into the run's cache."""
    from ntps.run_parameters import load_parameters
    from ntps.sources.language_models import resolve_model_location

    spec = load_parameters(REPOSITORY)["models"]["smollm2_135m"]
    once(model_cache, lambda folder: resolve_model_location(spec, str(folder)))
    return resolve_model_location(spec, str(model_cache)), spec  # converted: only the folder's name


@pytest.fixture(scope="session")
def four_layer_model(embedded_model, shared_folder):
    """A second real model: the embedded SmolLM2's first 4 blocks, saved as a local folder."""
    import transformers

    location, _ = embedded_model

    def save(folder):
        model = transformers.AutoModelForCausalLM.from_pretrained(location, num_hidden_layers=4)
        model.save_pretrained(folder)
        transformers.AutoTokenizer.from_pretrained(location).save_pretrained(folder)

    return once(shared_folder / "smollm2_4_layers", save)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Llama (2 blocks, width 16) with a character tokenizer, as a local model folder."""
    from tests.modeling.tiny_models import save_tiny_llama_with_tokenizer

    return save_tiny_llama_with_tokenizer(tmp_path_factory.mktemp("tiny_llama"))


def make_project_copy(root: Path) -> Path:
    shutil.copytree(REPOSITORY / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPOSITORY / name, root / name)
    (root / "src").mkdir()  # Kedro insists on the folder; the package comes from the install
    for layer in DATA_LAYERS:
        (root / "data" / layer).mkdir(parents=True)
    return root


@pytest.fixture
def project(tmp_path) -> Path:
    """A fresh copy of the project's configuration with empty data folders."""
    return make_project_copy(tmp_path / "project")


def local_model_run(name: str, folder: Path, datasets: list[str]) -> dict:
    """conf/local parameters that run the model saved in folder, as `name`, on `datasets`."""
    return {"run": {"models": [name], "datasets": datasets}, "models": {name: {"source": "local", "path": str(folder)}}}


def four_layer_run(four_layer_model: Path, datasets: list[str]) -> dict:
    """conf/local parameters that run the 4-block model on `datasets`: fast, for tests of the
    machinery rather than of the model."""
    return local_model_run("smollm2_4_layers", four_layer_model, datasets)


def kedro_run(
    project_path: Path,
    model_cache: Path,
    extra_params: dict | None = None,
    pipeline: str = "ntps",
    extra_args: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
):
    params = {**SMALL_RUN_PARAMS, "model_cache_dir": str(model_cache), **(extra_params or {})}
    command = [
        sys.executable,
        "-m",
        "kedro",
        "run",
        f"--pipelines={pipeline}",
        "--params",
        ",".join(f"{key}={value}" for key, value in params.items()),
        *(extra_args or []),
    ]
    return subprocess.run(
        command, cwd=project_path, env={**offline_environment(), **(extra_env or {})}, capture_output=True, text=True
    )

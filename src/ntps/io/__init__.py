"""Kedro datasets of this project, each imported when first named (the catalog's
`ntps.io.NpzDataset`): importing ntps.io.npz_dataset alone, as benchmarks/scale_benchmark.py does on
a GPU machine without the project's MLflow stack, does not import kedro-mlflow and MLflow."""

import importlib

_MODULES = {
    "LoraAdapterDataset": "lora_adapter_dataset",
    "NpzDataset": "npz_dataset",
    "VersionedMlflowArtifactDataset": "mlflow_artifact",
}

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)

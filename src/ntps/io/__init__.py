"""Kedro datasets of this project."""

from ntps.io.lora_adapter_dataset import LoraAdapterDataset
from ntps.io.mlflow_artifact import VersionedMlflowArtifactDataset
from ntps.io.npz_dataset import NpzDataset

__all__ = ["LoraAdapterDataset", "NpzDataset", "VersionedMlflowArtifactDataset"]

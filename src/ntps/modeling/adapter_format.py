"""A trained LoRA adapter and its head as files: peft's adapter format plus the head, readable
without torch or peft (numpy and safetensors only), so the catalog can load one cheaply."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

ADAPTER_CONFIG_FILE = "adapter_config.json"  # the file names peft.PeftModel.from_pretrained reads
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
HEAD_WEIGHTS_FILE = "classification_head.safetensors"


@dataclass
class LoraAdapter:
    """A trained LoRA adapter and its classification head, stored as peft stores adapters.

    Attributes:
        peft_config: the LoraConfig as a JSON-able dict (peft's adapter_config.json).
        adapter_weights: peft's adapter state dict, e.g.
            "base_model.model.layers.0.self_attn.q_proj.lora_A.weight" -> (rank, d_in) float32.
        head_weights: "weight" (n_classes, d) and "bias" (n_classes,) float32.
        location: the folder it was loaded from, which
            peft.PeftModel.from_pretrained(backbone, location) applies; None before it is saved.
    """

    peft_config: dict[str, Any]
    adapter_weights: dict[str, np.ndarray]
    head_weights: dict[str, np.ndarray]
    location: str | None = None

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ADAPTER_CONFIG_FILE).write_text(json.dumps(self.peft_config, indent=2, sort_keys=True))
        safetensors.numpy.save_file(self.adapter_weights, folder / ADAPTER_WEIGHTS_FILE)
        safetensors.numpy.save_file(self.head_weights, folder / HEAD_WEIGHTS_FILE)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> LoraAdapter:
        folder = Path(folder)
        return cls(
            json.loads((folder / ADAPTER_CONFIG_FILE).read_text()),
            safetensors.numpy.load_file(folder / ADAPTER_WEIGHTS_FILE),
            safetensors.numpy.load_file(folder / HEAD_WEIGHTS_FILE),
            location=os.fspath(folder),
        )

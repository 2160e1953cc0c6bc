"""Training checkpoints: where a run keeps them, and how it saves and resumes one, so that a killed
run resumes where it stopped and a changed one starts over."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ntps.core.learning_curves import Plateau, plateau
from ntps.modeling.classifiers import trainable_state


@dataclass
class TrainingHistory:
    """losses: the training loss of every step; validation_steps and validation_accuracies: the
    learning curve on the validation texts (empty without them)."""

    losses: list[float] = field(default_factory=list)
    validation_steps: list[int] = field(default_factory=list)
    validation_accuracies: list[float] = field(default_factory=list)

    def plateau(self, evaluations_per_epoch: int, n_validation: int) -> Plateau:
        """The plateau criterion (learning_curves.plateau) on the learning curve so far, measured on
        n_validation texts."""
        steps, accuracies = np.asarray(self.validation_steps), np.asarray(self.validation_accuracies)
        return plateau(steps, accuracies, evaluations_per_epoch, n_validation)


def run_checkpoint_path(
    kind: str,
    tokenized_texts: pd.DataFrame,
    language_model_card: dict[str, Any],
    settings: dict[str, Any],
    model: str,
    dataset: str,
) -> Path:
    """Where a training run of this kind checkpoints: under settings["checkpoint_dir"], named by
    a hash of the settings, the model and the training texts, so a killed run resumes and a
    changed one starts over."""
    train = tokenized_texts[tokenized_texts["split"] == "train"]
    identity = json.dumps(
        [kind, settings, language_model_card["location"], train["input_ids"].tolist()], sort_keys=True, default=str
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return Path(settings["checkpoint_dir"]) / model / dataset / f"{kind}-{digest}.pt"


def save_checkpoint(path: Path, classifier, optimizer, schedule, step: int, history: TrainingHistory) -> None:
    """Written to a temporary file and renamed, so a run killed while saving keeps the last one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(
        {
            "trainable": trainable_state(classifier),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            # Dropout on a GPU draws from CUDA's generators.
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "step": step,
            "history": asdict(history),
        },
        temporary,
    )
    temporary.replace(path)


def resume_checkpoint(path: Path, classifier, optimizer, schedule) -> tuple[int, TrainingHistory] | None:
    """Restore the trainable parameters, optimizer, schedule and random state saved at path;
    returns (steps done, the training history to there), or None when there is no checkpoint."""
    if not path.is_file():
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    classifier.load_state_dict(checkpoint["trainable"], strict=False)
    optimizer.load_state_dict(checkpoint["optimizer"])
    schedule.load_state_dict(checkpoint["schedule"])
    torch.set_rng_state(checkpoint["torch_rng"])
    if checkpoint["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
    return checkpoint["step"], TrainingHistory(**checkpoint["history"])

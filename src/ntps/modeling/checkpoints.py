"""Training checkpoints: where a run keeps them, and how it saves and resumes one, so that a killed
run resumes where it stopped and a changed one starts over."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ntps.modeling.classifiers import trainable_state


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


def save_checkpoint(path: Path, classifier, optimizer, schedule, step: int, losses: list[float]) -> None:
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
            "losses": losses,
        },
        temporary,
    )
    temporary.replace(path)


def resume_checkpoint(path: Path, classifier, optimizer, schedule) -> tuple[int, list[float]] | None:
    """Restore the trainable parameters, optimizer, schedule and random state saved at path;
    returns (steps done, their losses), or None when there is no checkpoint."""
    if not path.is_file():
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    classifier.load_state_dict(checkpoint["trainable"], strict=False)
    optimizer.load_state_dict(checkpoint["optimizer"])
    schedule.load_state_dict(checkpoint["schedule"])
    torch.set_rng_state(checkpoint["torch_rng"])
    if checkpoint["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
    return checkpoint["step"], checkpoint["losses"]

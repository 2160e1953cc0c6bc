"""LoRA fine-tuning of one model on one dataset: the adapter and its accuracy."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import transformers

from ntps.finetuning import accuracy, lora_classifier, train_classifier, trainable_state
from ntps.sources.language_models import DTYPES, load_tokenizer, resolve_device

logger = logging.getLogger(__name__)


def fine_tune_lora(
    tokenized_texts: pd.DataFrame, language_model_card: dict[str, Any], lora: dict[str, Any], model: str, dataset: str
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Trains adapters and head on the training split, scores the held-out split.

    The checkpoint lives under lora["checkpoint_dir"], named by a hash of the settings, the model
    and the texts, so a killed run resumes and a changed one starts over; it is removed when
    training ends, as the adapter is then the versioned output.
    """
    spec = language_model_card["spec"]
    tokenizer = load_tokenizer(language_model_card["location"], spec)
    # A fresh copy: peft injects adapters into the modules it wraps, so the backbone cached for
    # forward passes must not be the one adapted here.
    backbone = transformers.AutoModel.from_pretrained(
        language_model_card["location"], dtype=DTYPES[lora["dtype"]], trust_remote_code=spec.get("trust_remote_code", False)
    ).to(resolve_device(lora["device"]))
    n_classes = int(tokenized_texts["label_id"].max()) + 1
    classifier = lora_classifier(backbone, n_classes, lora, seed=lora["seed"])
    train = tokenized_texts[tokenized_texts["split"] == "train"]
    test = tokenized_texts[tokenized_texts["split"] == "test"]
    identity = json.dumps([lora, language_model_card["location"], train["input_ids"].tolist()], sort_keys=True, default=str)
    checkpoint = (
        Path(lora["checkpoint_dir"]) / model / dataset / f"lora-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.pt"
    )
    losses = train_classifier(classifier, train, lora, tokenizer.pad_token_id, checkpoint)
    metrics = pd.DataFrame(
        [
            {
                "model": model,
                "dataset": dataset,
                "steps": int(lora["steps"]),
                "final_training_loss": losses[-1] if losses else float("nan"),
                "lora_train_accuracy": accuracy(classifier, train, lora["batch_size"], tokenizer.pad_token_id),
                "lora_test_accuracy": accuracy(classifier, test, lora["batch_size"], tokenizer.pad_token_id)
                if len(test)
                else float("nan"),
            }
        ]
    )
    checkpoint.unlink(missing_ok=True)
    logger.info("LoRA on %s / %s: %s", model, dataset, metrics.iloc[0].to_dict())
    return {name: tensor.float().numpy() for name, tensor in trainable_state(classifier).items()}, metrics

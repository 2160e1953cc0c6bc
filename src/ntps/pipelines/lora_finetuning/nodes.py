"""LoRA fine-tuning of one model on one dataset: the adapter, its accuracy and its training log."""

from __future__ import annotations

from typing import Any

import pandas as pd
import transformers

from ntps.finetuning import LoraAdapter, lora_adapter, lora_classifier, train_and_score
from ntps.sources.language_models import DTYPES, load_tokenizer, resolve_device


def fine_tune_lora(
    tokenized_texts: pd.DataFrame, language_model_card: dict[str, Any], lora: dict[str, Any], model: str, dataset: str
) -> tuple[LoraAdapter, pd.DataFrame, pd.DataFrame]:
    """Trains adapters and head on the training split, scores both splits.

    A killed run resumes from its checkpoint (see train_and_score).

    Returns:
        (the adapter and head; one row of accuracies, final loss and seconds; the loss per step).
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
    metrics, training_log = train_and_score(
        classifier, tokenized_texts, language_model_card, lora, tokenizer.pad_token_id, "lora", model, dataset
    )
    return lora_adapter(classifier), metrics, training_log


def adapted_language_model_card(language_model_card: dict[str, Any], lora_adapter: LoraAdapter) -> dict[str, Any]:
    """The model's card with the adapter folder that load_backbone merges into its weights, so the
    NTPS stages rerun unchanged on the adapted model."""
    return {**language_model_card, "adapter": lora_adapter.location}

"""LoRA fine-tuning of one model on one dataset: the adapter, its accuracy and its training log."""

from __future__ import annotations

from typing import Any

import pandas as pd
import transformers

from ntps.core.linalg import resolve_device
from ntps.modeling.adapter_format import LoraAdapter
from ntps.modeling.classifiers import lora_adapter, lora_classifier
from ntps.modeling.training import train_and_score, training_attention
from ntps.sources.language_models import DTYPES, load_tokenizer


def fine_tune_lora(
    tokenized_texts: pd.DataFrame,
    language_model_card: dict[str, Any],
    training: dict[str, Any],
    lora: dict[str, Any],
    model: str,
    dataset: str,
) -> tuple[LoraAdapter, pd.DataFrame, pd.DataFrame]:
    """Trains adapters and head on the training split, scores both splits.

    A killed run resumes from its checkpoint (see train_and_score). `lora` overrides `training`.

    Returns:
        (the adapter and head; one row of accuracies, final loss and seconds; the loss per step).
    """
    settings = {**training, **lora}
    spec = language_model_card["spec"]
    tokenizer = load_tokenizer(language_model_card["location"], spec)
    # A fresh copy: peft injects adapters into the modules it wraps, so the backbone cached for
    # forward passes must not be the one adapted here.
    device = resolve_device(settings["device"])
    backbone = transformers.AutoModel.from_pretrained(
        language_model_card["location"],
        dtype=DTYPES[settings["dtype"]],
        attn_implementation=training_attention(device),
        trust_remote_code=spec.get("trust_remote_code", False),
    ).to(device)
    n_classes = int(tokenized_texts["label_id"].max()) + 1
    classifier = lora_classifier(backbone, n_classes, settings, seed=settings["seed"])
    metrics, training_log = train_and_score(
        classifier, tokenized_texts, language_model_card, settings, tokenizer.pad_token_id, "lora", model, dataset
    )
    return lora_adapter(classifier), metrics, training_log


def adapted_language_model_card(language_model_card: dict[str, Any], lora_adapter: LoraAdapter) -> dict[str, Any]:
    """The model's card with the adapter folder that load_backbone merges into its weights, so the
    NTPS stages rerun unchanged on the adapted model."""
    return {**language_model_card, "adapter": lora_adapter.location}

"""Full training from scratch of each model's architecture on each dataset (paper, Table 1), and the
table of linear-probe against full-training accuracy."""

from __future__ import annotations

from typing import Any

import pandas as pd
import transformers

from ntps.core.linalg import resolve_device
from ntps.modeling.classifiers import scratch_classifier
from ntps.modeling.training import train_and_score, training_attention
from ntps.reports.lora_study import linear_vs_full_markdown, linear_vs_full_table
from ntps.sources.language_models import DTYPES, load_tokenizer


def train_from_scratch(
    tokenized_texts: pd.DataFrame,
    language_model_card: dict[str, Any],
    training: dict[str, Any],
    from_scratch: dict[str, Any],
    model: str,
    dataset: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model's architecture, randomly initialized, trained with a linear head on the training
    split; scored on both splits. Resumes from its checkpoint like LoRA. `from_scratch` overrides
    `training`.

    Returns:
        (one row of accuracies, final loss and seconds; the loss per step).
    """
    settings = {**training, **from_scratch}
    spec = language_model_card["spec"]
    trust_remote_code = spec.get("trust_remote_code", False)
    tokenizer = load_tokenizer(language_model_card["location"], spec)
    config = transformers.AutoConfig.from_pretrained(language_model_card["location"], trust_remote_code=trust_remote_code)
    n_classes = int(tokenized_texts["label_id"].max()) + 1
    device = resolve_device(settings["device"])
    classifier = scratch_classifier(
        config, n_classes, settings["seed"], DTYPES[settings["dtype"]], device, trust_remote_code, training_attention(device)
    )
    return train_and_score(
        classifier, tokenized_texts, language_model_card, settings, tokenizer.pad_token_id, "scratch", model, dataset
    )


def compare_linear_and_full(probe_metrics: pd.DataFrame, *from_scratch_metrics: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Table 1: the linear probe's and the from-scratch model's test accuracy per model x dataset."""
    table = linear_vs_full_table(probe_metrics, pd.concat(from_scratch_metrics, ignore_index=True))
    return table, linear_vs_full_markdown(table)

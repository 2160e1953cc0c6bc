"""Texts -> token ids with the model's own tokenizer, truncation recorded per text."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ntps.modeling.hidden_states import tokenize_labeled_texts
from ntps.sources.language_models import load_tokenizer

logger = logging.getLogger(__name__)


def tokenize_texts(
    labeled_texts: pd.DataFrame, language_model_card: dict[str, Any], tokenization: dict[str, Any]
) -> pd.DataFrame:
    tokenizer = load_tokenizer(language_model_card["location"], language_model_card["spec"])
    tokenized = tokenize_labeled_texts(tokenizer, labeled_texts, tokenization["max_tokens"])
    logger.info(
        "%d texts, median %d tokens, %d truncated to %d",
        len(tokenized),
        int(tokenized["n_tokens"].median()),
        int(tokenized["truncated"].sum()),
        tokenization["max_tokens"],
    )
    return tokenized


def tokenize_label_views(
    language_model_card: dict[str, Any], tokenization: dict[str, Any], *labeled_views: pd.DataFrame
) -> list[pd.DataFrame]:
    """tokenize_texts for each label view of one text sample (the same texts, other labels)."""
    return [tokenize_texts(labeled_texts, language_model_card, tokenization) for labeled_texts in labeled_views]

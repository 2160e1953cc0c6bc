"""One forward pass per batch; every layer's statistics accumulated in float64."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ntps.core.errors import NtpsInputError
from ntps.extraction import hidden_state_statistics
from ntps.sources.language_models import load_backbone, load_tokenizer

logger = logging.getLogger(__name__)


def accumulate_hidden_statistics(
    tokenized_texts: pd.DataFrame, language_model_card: dict[str, Any], forward_pass: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Sums of meanXX, meanXY, cov0, cov1 per layer over the texts of forward_pass["split"]."""
    split = forward_pass["split"]
    texts = tokenized_texts[tokenized_texts["split"] == split]
    if texts.empty:
        raise NtpsInputError(f"no texts in split '{split}' to compute statistics on")
    spec = language_model_card["spec"]
    tokenizer = load_tokenizer(language_model_card["location"], spec)
    model = load_backbone(language_model_card["location"], spec, forward_pass["dtype"], forward_pass["device"])
    statistics = hidden_state_statistics(
        model,
        texts,
        n_classes=int(tokenized_texts["label_id"].max()) + 1,
        batch_size=forward_pass["batch_size"],
        pad_token_id=tokenizer.pad_token_id,
    )
    logger.info(
        "%d texts, %d next-token pairs, %d hidden states of size %d",
        statistics.n_texts,
        statistics.n_transitions,
        statistics.n_layers,
        statistics.hidden_size,
    )
    return statistics.to_arrays()

"""One forward pass per model x dataset: every layer's statistics accumulated in float64, and the
mean-pooled features the probes use."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ntps.extraction import extract_hidden_states
from ntps.sources.language_models import load_backbone, load_tokenizer

logger = logging.getLogger(__name__)


def extract_hidden_features(
    tokenized_texts: pd.DataFrame, language_model_card: dict[str, Any], forward_pass: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Sums of meanXX, meanXY, cov0, cov1 per layer over the texts of forward_pass["split"], and
    the mean-pooled forward_pass["pooled_hidden_states"] of every text."""
    spec = language_model_card["spec"]
    tokenizer = load_tokenizer(language_model_card["location"], spec)
    model = load_backbone(language_model_card["location"], spec, forward_pass["dtype"], forward_pass["device"])
    statistics, pooled = extract_hidden_states(
        model,
        tokenized_texts,
        n_classes=int(tokenized_texts["label_id"].max()) + 1,
        batch_size=forward_pass["batch_size"],
        pad_token_id=tokenizer.pad_token_id,
        statistics_split=forward_pass["split"],
        pooled_hidden_states=forward_pass["pooled_hidden_states"],
    )
    logger.info(
        "statistics of %d texts (%d next-token pairs), %d hidden states of size %d; pooled hidden states %s of %d texts",
        statistics.n_texts,
        statistics.n_transitions,
        statistics.n_layers,
        statistics.hidden_size,
        pooled.hidden_states.tolist(),
        len(pooled.label_ids),
    )
    return statistics.to_arrays(), pooled.to_arrays()

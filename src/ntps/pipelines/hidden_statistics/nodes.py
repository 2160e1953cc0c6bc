"""One forward pass per model x dataset (or per shard of it): every layer's statistics accumulated
in float64, and the mean-pooled features the probes use."""

from __future__ import annotations

import functools
import logging
import operator
from typing import Any

import numpy as np
import pandas as pd

from ntps.core.errors import NtpsInputError
from ntps.core.statistics import LayerStatistics
from ntps.modeling.hidden_states import PooledFeatures, extract_hidden_states, shard_positions
from ntps.sources.language_models import load_backbone, load_tokenizer

logger = logging.getLogger(__name__)


def _forward(
    texts: pd.DataFrame, language_model_card: dict[str, Any], forward_pass: dict[str, Any], n_classes: int
) -> tuple[LayerStatistics, PooledFeatures]:
    spec = language_model_card["spec"]
    tokenizer = load_tokenizer(language_model_card["location"], spec)
    model = load_backbone(
        language_model_card["location"],
        spec,
        forward_pass["dtype"],
        forward_pass["device"],
        adapter=language_model_card.get("adapter"),
    )
    return extract_hidden_states(
        model,
        texts,
        n_classes=n_classes,
        batch_size=forward_pass["batch_size"],
        pad_token_id=tokenizer.pad_token_id,
        statistics_split=forward_pass["split"],
        pooled_hidden_states=forward_pass["pooled_hidden_states"],
    )


def _checked(statistics: LayerStatistics, pooled: PooledFeatures, split: str) -> tuple[dict, dict]:
    if statistics.n_texts == 0:
        raise NtpsInputError(f"no texts in split '{split}' to compute statistics on")
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


def extract_hidden_features(
    tokenized_texts: pd.DataFrame, language_model_card: dict[str, Any], forward_pass: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Sums of meanXX, meanXY, cov0, cov1 per layer over the texts of forward_pass["split"], and
    the mean-pooled forward_pass["pooled_hidden_states"] of every text."""
    n_classes = int(tokenized_texts["label_id"].max()) + 1
    return _checked(*_forward(tokenized_texts, language_model_card, forward_pass, n_classes), forward_pass["split"])


def extract_shard_features(
    tokenized_texts: pd.DataFrame, language_model_card: dict[str, Any], forward_pass: dict[str, Any], shard: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The same sums and features over one shard of whole batches (its sums may be empty)."""
    positions = shard_positions(tokenized_texts, forward_pass["batch_size"], forward_pass["shards"], shard)
    if not len(positions):
        n_batches = -(-len(tokenized_texts) // forward_pass["batch_size"])
        raise NtpsInputError(
            f"forward_pass.shards is {forward_pass['shards']} but the texts make only {n_batches} batches: use fewer shards"
        )
    logger.info("shard %d of %d: %d texts", shard, forward_pass["shards"], len(positions))
    n_classes = int(tokenized_texts["label_id"].max()) + 1
    statistics, pooled = _forward(tokenized_texts.iloc[positions], language_model_card, forward_pass, n_classes)
    return statistics.to_arrays(), pooled.to_arrays()


def combine_shards(
    tokenized_texts: pd.DataFrame, forward_pass: dict[str, Any], *shards: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Adds the shards' statistics (they are sums) and puts their pooled features back in row order.

    Args:
        shards: statistics_0, pooled_0, statistics_1, pooled_1, ... as extract_shard_features wrote them.
    """
    statistics = functools.reduce(operator.add, (LayerStatistics.from_arrays(arrays) for arrays in shards[0::2]))
    pooled_shards = [PooledFeatures.from_arrays(arrays) for arrays in shards[1::2]]
    features = np.zeros((len(tokenized_texts), *pooled_shards[0].features.shape[1:]), dtype=np.float32)
    for shard, pooled in enumerate(pooled_shards):
        features[shard_positions(tokenized_texts, forward_pass["batch_size"], len(pooled_shards), shard)] = pooled.features
    pooled = PooledFeatures(
        features,
        pooled_shards[0].hidden_states,
        tokenized_texts["label_id"].to_numpy(),
        tokenized_texts["split"].to_numpy(dtype=str),
    )
    return _checked(statistics, pooled, forward_pass["split"])

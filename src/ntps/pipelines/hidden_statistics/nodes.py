"""One forward pass per model x text sample (or per shard of it): every layer's statistics
accumulated in float64, and the mean-pooled features the probes use, for each label view of the
texts."""

from __future__ import annotations

import dataclasses
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


def _shared_texts(
    tokenized_views: tuple[pd.DataFrame, ...], only_split: str | None = None
) -> tuple[pd.DataFrame, np.ndarray, list[int]]:
    """The texts that the label views share (those of split `only_split` when given), their
    (n_texts, V) label ids and each view's number of classes (label ids follow each view's sorted
    label names, so its largest id + 1, counted over all its texts)."""
    texts = tokenized_views[0]
    for view in tokenized_views[1:]:
        same = len(view) == len(texts) and all(
            (view[column].to_numpy() == texts[column].to_numpy()).all() for column in ("text", "split", "n_tokens")
        )
        if not same:
            raise NtpsInputError(
                "label views of one text sample hold different texts; their dataset entries differ only in "
                "label_column or label_pattern, which must not drop texts (give a view its own keep_labels instead)"
            )
    label_ids = np.stack([view["label_id"].to_numpy() for view in tokenized_views], axis=1)
    n_classes = [int(view["label_id"].max()) + 1 for view in tokenized_views]
    if only_split is not None:
        kept = (texts["split"] == only_split).to_numpy()
        texts, label_ids = texts[kept].reset_index(drop=True), label_ids[kept]
    return texts, label_ids, n_classes


def _forward(
    texts: pd.DataFrame,
    language_model_card: dict[str, Any],
    forward_pass: dict[str, Any],
    n_classes: list[int],
    label_ids: np.ndarray,
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
        label_ids=label_ids,
        statistics_products=forward_pass["statistics_products"],
    )


def _per_view(statistics: LayerStatistics, pooled: PooledFeatures, n_classes: list[int], split: str) -> list[dict]:
    """Each label view's statistics and pooled features, as archives: view after view."""
    if statistics.n_texts == 0:
        raise NtpsInputError(f"no texts in split '{split}' to compute statistics on")
    logger.info(
        "statistics of %d texts (%d next-token pairs), %d hidden states of size %d, %d label view(s); "
        "pooled hidden states %s of %d texts",
        statistics.n_texts,
        statistics.n_transitions,
        statistics.n_layers,
        statistics.hidden_size,
        len(n_classes),
        pooled.hidden_states.tolist(),
        len(pooled.label_ids),
    )
    views = []
    for view, view_statistics in enumerate(statistics.label_views(n_classes)):
        view_pooled = dataclasses.replace(pooled, label_ids=pooled.label_ids[:, view])
        views += [view_statistics.to_arrays(), view_pooled.to_arrays()]
    return views


def _texts_to_run(
    tokenized_views: tuple[pd.DataFrame, ...], forward_pass: dict[str, Any], statistics_split_only: bool
) -> tuple[pd.DataFrame, np.ndarray, list[int]]:
    """_shared_texts, of forward_pass["split"] only when statistics_split_only."""
    return _shared_texts(tokenized_views, forward_pass["split"] if statistics_split_only else None)


def extract_hidden_features(
    language_model_card: dict[str, Any],
    forward_pass: dict[str, Any],
    *tokenized_views: pd.DataFrame,
    statistics_split_only: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Sums of meanXX, meanXY, cov0, cov1 per layer over the texts of forward_pass["split"], and
    the mean-pooled forward_pass["pooled_hidden_states"] of every text, from one forward pass over
    the texts that the label views share; with statistics_split_only, the pass runs the texts of
    forward_pass["split"] alone and pools only those.

    Returns:
        statistics, pooled features of the first view, then of the second, ...
    """
    texts, label_ids, n_classes = _texts_to_run(tokenized_views, forward_pass, statistics_split_only)
    statistics, pooled = _forward(texts, language_model_card, forward_pass, n_classes, label_ids)
    return _per_view(statistics, pooled, n_classes, forward_pass["split"])


def extract_shard_features(
    language_model_card: dict[str, Any],
    forward_pass: dict[str, Any],
    *tokenized_views: pd.DataFrame,
    shard: int,
    statistics_split_only: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The same sums and features over one shard of whole batches (its sums may be empty), every
    label view's meanXY side by side."""
    texts, label_ids, n_classes = _texts_to_run(tokenized_views, forward_pass, statistics_split_only)
    positions = shard_positions(texts, forward_pass["batch_size"], forward_pass["shards"], shard)
    if not len(positions):
        n_batches = -(-len(texts) // forward_pass["batch_size"])
        raise NtpsInputError(
            f"forward_pass.shards is {forward_pass['shards']} but the texts make only {n_batches} batches: use fewer shards"
        )
    logger.info("shard %d of %d: %d texts", shard, forward_pass["shards"], len(positions))
    statistics, pooled = _forward(texts.iloc[positions], language_model_card, forward_pass, n_classes, label_ids[positions])
    return statistics.to_arrays(), pooled.to_arrays()


def combine_shards(
    forward_pass: dict[str, Any],
    *views_and_shards: pd.DataFrame | dict[str, np.ndarray],
    n_views: int,
    statistics_split_only: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Adds the shards' statistics (they are sums) and puts their pooled features back in row order.

    Args:
        views_and_shards: the n_views tokenized label views, then statistics_0, pooled_0,
            statistics_1, pooled_1, ... as extract_shard_features wrote them.

    Returns:
        as extract_hidden_features.
    """
    texts, label_ids, n_classes = _texts_to_run(views_and_shards[:n_views], forward_pass, statistics_split_only)
    shards = views_and_shards[n_views:]
    statistics = functools.reduce(operator.add, (LayerStatistics.from_arrays(arrays) for arrays in shards[0::2]))
    pooled_shards = [PooledFeatures.from_arrays(arrays) for arrays in shards[1::2]]
    features = np.zeros((len(texts), *pooled_shards[0].features.shape[1:]), dtype=np.float32)
    for shard, pooled in enumerate(pooled_shards):
        features[shard_positions(texts, forward_pass["batch_size"], len(pooled_shards), shard)] = pooled.features
    pooled = PooledFeatures(features, pooled_shards[0].hidden_states, label_ids, texts["split"].to_numpy(dtype=str))
    return _per_view(statistics, pooled, n_classes, forward_pass["split"])

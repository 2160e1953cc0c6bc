"""Forward passes over tokenized texts, streaming every layer's hidden states into statistics."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ntps.core.errors import NtpsInputError
from ntps.core.statistics import LayerStatistics, StatisticsAccumulator

logger = logging.getLogger(__name__)


def tokenize_labeled_texts(tokenizer, labeled_texts: pd.DataFrame, max_tokens: int) -> pd.DataFrame:
    """Token ids per text, cut to max_tokens, with the untruncated length kept.

    Returns:
        labeled_texts' columns plus input_ids, attention_mask (lists), n_tokens,
        n_tokens_untruncated and truncated; texts that tokenize to nothing are dropped.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise NtpsInputError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if labeled_texts.empty:
        raise NtpsInputError("the dataset is empty: nothing to tokenize")
    full_ids = tokenizer(labeled_texts["text"].tolist(), add_special_tokens=True)["input_ids"]
    input_ids = [ids[:max_tokens] for ids in full_ids]
    tokenized = labeled_texts.assign(
        input_ids=input_ids,
        attention_mask=[[1] * len(ids) for ids in input_ids],
        n_tokens=[len(ids) for ids in input_ids],
        n_tokens_untruncated=[len(ids) for ids in full_ids],
    )
    tokenized["truncated"] = tokenized["n_tokens_untruncated"] > tokenized["n_tokens"]
    empty = tokenized["n_tokens"] == 0
    if empty.any():
        logger.warning("dropping %d texts that tokenize to no tokens", int(empty.sum()))
        tokenized = tokenized[~empty]
    if tokenized.empty:
        raise NtpsInputError("no text of the dataset tokenizes to any token")
    return tokenized.reset_index(drop=True)


def padded_batches(
    tokenized: pd.DataFrame, batch_size: int, pad_token_id: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(input_ids (B, T), attention_mask (B, T), label_ids (B,)) batches, right-padded.

    Texts are taken longest first, so that similar lengths share a batch (little padding) and an
    out-of-memory error shows on the first batch rather than the last.
    """
    if batch_size < 1:
        raise NtpsInputError(f"batch_size must be positive, got {batch_size}")
    order = np.argsort(-tokenized["n_tokens"].to_numpy(), kind="stable")
    for start in range(0, len(order), batch_size):
        rows = tokenized.iloc[order[start : start + batch_size]]
        width = int(rows["n_tokens"].max())
        input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, ids in enumerate(rows["input_ids"]):
            input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        yield input_ids, attention_mask, torch.tensor(rows["label_id"].to_numpy(), dtype=torch.long)


def hidden_state_statistics(
    model: torch.nn.Module,
    tokenized: pd.DataFrame,
    n_classes: int,
    batch_size: int,
    pad_token_id: int,
) -> LayerStatistics:
    """Statistics of every hidden state (embeddings through the last block) over the texts."""
    if tokenized.empty:
        raise NtpsInputError("no texts to run: the tokenized split is empty")
    device = next(model.parameters()).device
    accumulator = None
    batches = padded_batches(tokenized, batch_size, pad_token_id)
    total = -(-len(tokenized) // batch_size)
    with torch.inference_mode():
        for input_ids, attention_mask, label_ids in tqdm(batches, total=total, desc="forward + statistics", unit="batch"):
            output = model(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                output_hidden_states=True,
                use_cache=False,
            )
            hidden_states = output.hidden_states
            if accumulator is None:
                accumulator = StatisticsAccumulator(len(hidden_states), hidden_states[0].shape[-1], n_classes, device)
            accumulator.update(hidden_states, attention_mask, label_ids)
    return accumulator.result()

"""Forward passes over tokenized texts, streaming every layer's hidden states into statistics."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ntps.core.errors import NtpsInputError
from ntps.core.statistics import LayerStatistics, StatisticsAccumulator, check_products

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


def batch_order(tokenized: pd.DataFrame) -> np.ndarray:
    """Row positions longest first, ties in row order: the order texts are batched in."""
    return np.argsort(-tokenized["n_tokens"].to_numpy(), kind="stable")


def shard_positions(tokenized: pd.DataFrame, batch_size: int, n_shards: int, shard: int) -> np.ndarray:
    """Row positions (ascending) of shard `shard` of `n_shards`: a contiguous run of whole batches.

    Shards are cut between batches, so every text is padded and run in the same batch as in an
    unsharded pass: per-shard statistics add up to the unsharded ones up to float64 summation order.
    """
    if not 0 <= shard < n_shards:
        raise NtpsInputError(f"shard {shard} does not exist among {n_shards} shards")
    n_batches = -(-len(tokenized) // batch_size)
    batches = np.array_split(np.arange(n_batches), n_shards)[shard]
    if not len(batches):
        return np.zeros(0, dtype=int)
    return np.sort(batch_order(tokenized)[batches[0] * batch_size : (batches[-1] + 1) * batch_size])


def padded_batches(
    tokenized: pd.DataFrame, batch_size: int, pad_token_id: int
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(row positions (B,), input_ids (B, T), attention_mask (B, T), label_ids (B,)) batches,
    right-padded; row positions index the rows of `tokenized`.

    Texts are taken longest first, so that similar lengths share a batch (little padding) and an
    out-of-memory error shows on the first batch rather than the last.
    """
    if batch_size < 1:
        raise NtpsInputError(f"batch_size must be positive, got {batch_size}")
    order = batch_order(tokenized)
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        rows = tokenized.iloc[positions]
        width = int(rows["n_tokens"].max())
        input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, ids in enumerate(rows["input_ids"]):
            # A copy: parquet hands back read-only arrays, which torch will not wrap without a warning.
            input_ids[row, : len(ids)] = torch.from_numpy(np.array(ids, dtype=np.int64))
            attention_mask[row, : len(ids)] = 1
        yield positions, input_ids, attention_mask, torch.tensor(rows["label_id"].to_numpy(), dtype=torch.long)


@dataclass
class PooledFeatures:
    """Mean-pooled hidden states (padding excluded) of every text, for probes.

    Attributes:
        features: (n_texts, P, d) float32, the mean over a text's tokens of P hidden states.
        hidden_states: (P,) which hidden states (0 = embeddings) the features hold.
        label_ids: (n_texts,), or (n_texts, V) when several label views were run together.
        splits: (n_texts,) "train" or "test".
    """

    features: np.ndarray
    hidden_states: np.ndarray
    label_ids: np.ndarray
    splits: np.ndarray

    def split(self, name: str, hidden_state: int) -> tuple[np.ndarray, np.ndarray]:
        """(features (m, d) float64, label_ids (m,)) of the texts in split `name`."""
        (column,) = np.flatnonzero(self.hidden_states == hidden_state)
        return self.features[self.splits == name, column].astype(np.float64), self.split_labels(name)

    def split_labels(self, name: str) -> np.ndarray:
        """label_ids (m,) of the texts in split `name`."""
        return self.label_ids[self.splits == name]

    def split_states(self, name: str) -> Mapping[int, np.ndarray]:
        """hidden state -> (m, d) float64 features of the texts in split `name`, each read when it
        is used (features memory-mapped by NpzDataset are read one hidden state at a time)."""
        return _SplitStates(self, name)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "features": self.features,
            "hidden_states": self.hidden_states,
            "label_ids": self.label_ids,
            "splits": self.splits.astype(str),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> PooledFeatures:
        return cls(**{name: np.asarray(arrays[name]) for name in ("features", "hidden_states", "label_ids", "splits")})


class _SplitStates(Mapping[int, np.ndarray]):
    def __init__(self, pooled: PooledFeatures, split: str):
        self._pooled, self._split = pooled, split

    def __contains__(self, hidden_state: object) -> bool:
        return hidden_state in self._pooled.hidden_states

    def __getitem__(self, hidden_state: int) -> np.ndarray:
        if hidden_state not in self:
            raise KeyError(hidden_state)
        return self._pooled.split(self._split, hidden_state)[0]

    def __iter__(self) -> Iterator[int]:
        return iter(int(hidden_state) for hidden_state in self._pooled.hidden_states)

    def __len__(self) -> int:
        return len(self._pooled.hidden_states)


def resolve_hidden_states(selection: str | Sequence[int], n_hidden_states: int) -> np.ndarray:
    """ "all", or hidden-state indices where -1 is the last (the final block's output)."""
    if selection == "all":
        return np.arange(n_hidden_states)
    if isinstance(selection, str) or not all(isinstance(index, int) for index in selection) or not selection:
        raise NtpsInputError(f"hidden states to pool must be 'all' or a list of integers, got {selection!r}")
    out_of_range = [index for index in selection if not -n_hidden_states <= index < n_hidden_states]
    if out_of_range:
        raise NtpsInputError(f"hidden states {out_of_range} do not exist: the model has {n_hidden_states}")
    return np.unique(np.asarray(selection) % n_hidden_states)


def extract_hidden_states(
    model: torch.nn.Module,
    tokenized: pd.DataFrame,
    n_classes: int | Sequence[int],
    batch_size: int,
    pad_token_id: int,
    statistics_split: str | None = None,
    pooled_hidden_states: str | Sequence[int] = (-1,),
    label_ids: np.ndarray | None = None,
    statistics_products: str = "float64",
) -> tuple[LayerStatistics, PooledFeatures]:
    """One forward pass over every text: the statistics of all hidden states (embeddings through
    the last block) over the texts of `statistics_split` (None: all texts; none of them in this
    table gives zero sums, as a shard may), and the mean-pooled `pooled_hidden_states` of all texts
    for the probes.

    Labels are tokenized["label_id"] (n_classes an int), or label_ids (n_texts, V) for V label
    views of these texts with n_classes[v] classes each: the statistics then hold the views'
    meanXY side by side (LayerStatistics.label_views splits them) and the pooled features the
    (n_texts, V) labels. statistics_products: how the statistics' products are computed
    (core.statistics.PRODUCTS).
    """
    if tokenized.empty:
        raise NtpsInputError("no texts to run: the tokenized table is empty")
    check_products(statistics_products)  # before the forward pass, not after its first batch
    labels = tokenized["label_id"].to_numpy() if label_ids is None else np.asarray(label_ids)
    if len(labels) != len(tokenized):
        raise NtpsInputError(f"{len(labels)} label rows for {len(tokenized)} texts")
    in_statistics = np.ones(len(tokenized), dtype=bool)
    if statistics_split is not None:
        in_statistics = (tokenized["split"] == statistics_split).to_numpy()
    device = next(model.parameters()).device
    accumulator, features, pooled = None, None, None
    batches = padded_batches(tokenized, batch_size, pad_token_id)
    total = -(-len(tokenized) // batch_size)
    with torch.inference_mode():
        for positions, input_ids, attention_mask, _ in tqdm(batches, total=total, desc="forward + statistics", unit="batch"):
            hidden_states = model(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                output_hidden_states=True,
                use_cache=False,
            ).hidden_states
            if accumulator is None:
                hidden_size = hidden_states[0].shape[-1]
                accumulator = StatisticsAccumulator(
                    len(hidden_states), hidden_size, n_classes, device, products=statistics_products
                )
                pooled = resolve_hidden_states(pooled_hidden_states, len(hidden_states))
                features = np.zeros((len(tokenized), len(pooled), hidden_size), dtype=np.float32)
            rows = torch.as_tensor(in_statistics[positions], device=device)
            means_in_statistics = None
            if rows.any():
                # No copy of every hidden state when the whole batch is summed.
                summed_states = hidden_states if rows.all() else [states[rows] for states in hidden_states]
                means_in_statistics = accumulator.update(
                    summed_states,
                    attention_mask[rows.cpu()],
                    torch.as_tensor(labels[positions])[rows.cpu()],
                )
            # The texts in the statistics have their mean states from the accumulator; the others
            # (the held-out split) are pooled here, in float64 as there.
            others = ~rows
            real = attention_mask.to(device)[others].unsqueeze(-1).bool()
            for column, index in enumerate(pooled):
                mean_state = torch.empty((len(positions), hidden_size), dtype=torch.float64, device=device)
                if means_in_statistics is not None:
                    mean_state[rows] = means_in_statistics[index]
                if bool(others.any()):
                    # Selected, not multiplied by the mask: padding may hold NaN (StatisticsAccumulator).
                    summed = torch.where(real, hidden_states[index][others], 0.0).sum(dim=1, dtype=torch.float64)
                    mean_state[others] = summed / real.sum(dim=1)
                features[positions, column] = mean_state.float().cpu().numpy()
    splits = tokenized["split"].to_numpy(dtype=str) if "split" in tokenized else np.full(len(tokenized), "train")
    return accumulator.result(), PooledFeatures(features, pooled, labels, splits)

"""ntps.modeling.hidden_states: tokenization, shards and one padded, batched forward pass."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import torch

from ntps.core.errors import NtpsInputError
from ntps.core.statistics import STORED_NAMES, StatisticsAccumulator
from ntps.modeling.hidden_states import extract_hidden_states, resolve_hidden_states, shard_positions, tokenize_labeled_texts
from ntps.sources.language_models import load_tokenizer
from tests.modeling.tiny_models import tiny_llama


def test_tokenization_records_truncation_with_the_embedded_tokenizer(embedded_model):
    location, spec = embedded_model
    tokenizer = load_tokenizer(location, spec)
    texts = pd.DataFrame(
        {"text": ["short", "a much longer text " * 10], "label": ["a", "b"], "label_id": [0, 1], "split": "train"}
    )
    tokenized = tokenize_labeled_texts(tokenizer, texts, max_tokens=8)
    assert tokenized["truncated"].tolist() == [False, True]
    assert tokenized["n_tokens"].iloc[1] == 8 and tokenized["n_tokens_untruncated"].iloc[1] > 8
    assert all(len(mask) == len(ids) for mask, ids in zip(tokenized["attention_mask"], tokenized["input_ids"]))
    with pytest.raises(NtpsInputError, match="max_tokens must be a positive integer"):
        tokenize_labeled_texts(tokenizer, texts, max_tokens=0)


def random_tokenized(rng, lengths, label_ids, splits) -> pd.DataFrame:
    """A tokenized table of random token ids with the given lengths, labels and splits."""
    return pd.DataFrame(
        {
            "input_ids": [rng.integers(1, 50, size=n).tolist() for n in lengths],
            "n_tokens": lengths,
            "label_id": label_ids,
            "split": splits,
        }
    )


def test_one_padded_forward_gives_train_statistics_and_every_texts_pooled_features():
    """Batched, padded, longest-first: the train split's statistics equal one-text-at-a-time
    accumulation over train texts only, and every text's pooled features are its mean states."""
    model = tiny_llama()
    rng = np.random.default_rng(0)
    lengths = [1, 3, 7, 2, 9, 4, 5]
    tokenized = random_tokenized(
        rng, lengths, [0, 1, 2, 0, 1, 2, 0], ["train", "test", "train", "train", "test", "train", "train"]
    )
    batched, pooled = extract_hidden_states(
        model, tokenized, n_classes=3, batch_size=3, pad_token_id=0, statistics_split="train", pooled_hidden_states=[0, -1]
    )
    single = StatisticsAccumulator(3, 16, 3)
    with torch.inference_mode():
        for row, (ids, label, split) in enumerate(zip(tokenized["input_ids"], tokenized["label_id"], tokenized["split"])):
            states = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            np.testing.assert_allclose(pooled.features[row, 0], states[0][0].mean(dim=0).numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(pooled.features[row, 1], states[2][0].mean(dim=0).numpy(), rtol=1e-4, atol=1e-5)
            if split == "train":
                single.update(states, torch.ones(1, len(ids)), torch.tensor([label]))
    expected = single.result()
    train_lengths = [n for n, split in zip(lengths, tokenized["split"]) if split == "train"]
    assert batched.n_texts == 5 and batched.n_transitions == sum(train_lengths) - 5
    assert pooled.hidden_states.tolist() == [0, 2] and pooled.splits.tolist() == tokenized["split"].tolist()
    for name in STORED_NAMES:
        reference = getattr(expected, name)
        np.testing.assert_allclose(getattr(batched, name), reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())
    train_features, train_labels = pooled.split("train", 2)
    assert train_features.shape == (5, 16) and train_labels.tolist() == [0, 2, 0, 2, 0]


def test_two_label_views_make_one_forward_pass_with_each_views_statistics():
    """Views of the same texts share the forward pass: one model call per batch, and each view's
    statistics equal a pass of its own to 1e-10."""
    model = tiny_llama()
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 10, size=11)
    tokenized = random_tokenized(rng, lengths, np.arange(11) % 3, ["train"] * 8 + ["test"] * 3)
    views = np.stack([tokenized["label_id"].to_numpy(), np.arange(11) % 2], axis=1)
    calls = []
    model.register_forward_hook(lambda module, args, output: calls.append(len(output.hidden_states)))
    run = functools.partial(extract_hidden_states, model, batch_size=4, pad_token_id=0, statistics_split="train")
    together, pooled = run(tokenized, n_classes=[3, 2], label_ids=views)
    assert len(calls) == 3  # 11 texts in batches of 4: one pass, not one per view
    assert pooled.label_ids.shape == (11, 2)
    for view, statistics in enumerate(together.label_views([3, 2])):
        alone, alone_pooled = run(tokenized.assign(label_id=views[:, view]), n_classes=[3, 2][view])
        for name in STORED_NAMES:
            np.testing.assert_allclose(getattr(statistics, name), getattr(alone, name), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(statistics.class_counts, alone.class_counts)
        np.testing.assert_array_equal(pooled.features, alone_pooled.features)
    assert len(calls) == 3 + 2 * 3


def test_bfloat16x3_products_give_float32_accurate_statistics_and_a_bad_choice_stops_before_the_forward_pass():
    model = tiny_llama()
    rng = np.random.default_rng(4)
    tokenized = random_tokenized(rng, rng.integers(2, 10, size=9), np.arange(9) % 3, ["train"] * 9)
    run = functools.partial(extract_hidden_states, model, tokenized, n_classes=3, batch_size=4, pad_token_id=0)
    exact, _ = run()
    split, _ = run(statistics_products="bfloat16x3")
    np.testing.assert_array_equal(split.mean_xx_upper, exact.mean_xx_upper)
    for name in ("cov0_upper", "cov1"):
        reference = getattr(exact, name)
        assert not np.array_equal(getattr(split, name), reference)
        np.testing.assert_allclose(getattr(split, name), reference, rtol=0, atol=1e-6 * np.abs(reference).max())
    calls = []
    model.register_forward_hook(lambda module, args, output: calls.append(1))
    with pytest.raises(NtpsInputError, match="one of"):
        run(statistics_products="tf32")
    assert not calls


def test_pooled_hidden_states_are_checked():
    assert resolve_hidden_states("all", 4).tolist() == [0, 1, 2, 3]
    assert resolve_hidden_states([-1, 0], 4).tolist() == [0, 3]
    with pytest.raises(NtpsInputError, match=r"hidden states \[4\] do not exist: the model has 4"):
        resolve_hidden_states([4], 4)
    with pytest.raises(NtpsInputError, match="must be 'all' or a list of integers"):
        resolve_hidden_states("last", 4)


def test_shards_are_whole_batches_whose_statistics_add_up_to_one_pass():
    model = tiny_llama()
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 12, size=23)
    tokenized = random_tokenized(
        rng, lengths, rng.integers(0, 3, size=23), rng.choice(["train", "test"], size=23, p=[0.7, 0.3])
    )
    batch_size, n_shards = 4, 3
    shards = [shard_positions(tokenized, batch_size, n_shards, shard) for shard in range(n_shards)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(23))
    assert [len(rows) % batch_size for rows in shards[:-1]] == [0] * (n_shards - 1)
    run = functools.partial(
        extract_hidden_states, model, n_classes=3, batch_size=batch_size, pad_token_id=0, statistics_split="train"
    )
    whole, whole_features = run(tokenized)
    parts = [run(tokenized.iloc[rows]) for rows in shards]
    total = functools.reduce(lambda a, b: a + b, [statistics for statistics, _ in parts])
    assert total.n_texts == whole.n_texts and total.n_transitions == whole.n_transitions
    for name in STORED_NAMES:
        np.testing.assert_allclose(getattr(total, name), getattr(whole, name), rtol=1e-10, atol=1e-12)
    for rows, (_, features) in zip(shards, parts):
        np.testing.assert_array_equal(features.features, whole_features.features[rows])

"""Data and model sources, tokenization and the batched forward pass, and their error messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import transformers

from ntps.core.errors import NtpsInputError
from ntps.core.statistics import StatisticsAccumulator
from ntps.modeling.hidden_states import extract_hidden_states, resolve_hidden_states, tokenize_labeled_texts
from ntps.pipelines.fan_out import grid_from_parameters, load_parameters
from ntps.pipelines.reporting.nodes import summarize_ntps
from ntps.sources.language_models import ModelNotAvailableError, load_tokenizer, resolve_model_location
from ntps.sources.text_datasets import (
    DatasetNotAvailableError,
    read_raw_dataset,
    select_labeled_texts,
)
from tests.conftest import REPOSITORY

SAMPLING = {"seed": 0, "test_fraction": 0.3, "max_texts": {"train": 50, "test": 20}}


@pytest.fixture(scope="module")
def registry():
    return load_parameters(REPOSITORY)


EMBEDDED_LABEL_COUNTS = {
    "rotten_tomatoes": 2,
    "election_tweets": 2,
    "newsgroups20": 20,
    "clothing_ratings": 5,
    "clothing_departments": 6,
    "reuters_r8": 8,
}


@pytest.mark.parametrize("name", sorted(EMBEDDED_LABEL_COUNTS))
def test_embedded_datasets_load_offline_with_their_labels(registry, name):
    spec = registry["datasets"][name]
    texts = select_labeled_texts(read_raw_dataset(spec), spec, SAMPLING)
    assert set(texts["split"]) == {"train", "test"}
    assert (texts["split"] == "train").sum() == 50 and (texts["split"] == "test").sum() == 20
    assert texts["text"].str.len().gt(0).all()
    assert texts.groupby("label")["label_id"].nunique().eq(1).all()
    expected_labels = EMBEDDED_LABEL_COUNTS[name]
    raw_labels = select_labeled_texts(read_raw_dataset(spec), spec, {"max_texts": {"train": None, "test": None}})
    assert raw_labels["label"].nunique() == expected_labels


def test_sampling_is_seeded_and_label_ids_follow_sorted_names():
    raw = pd.DataFrame({"t": [f"text {i}" for i in range(100)], "y": ["b", "a", "c", "a"] * 25})
    spec = {"text_column": "t", "label_column": "y"}
    first, second = (select_labeled_texts(raw, spec, SAMPLING) for _ in range(2))
    pd.testing.assert_frame_equal(first, second)
    assert dict(zip(first["label"], first["label_id"])) == {"a": 0, "b": 1, "c": 2}


def test_bad_datasets_are_named():
    raw = pd.DataFrame({"sentence": ["good", "bad"], "label": [1, 0]})
    with pytest.raises(
        NtpsInputError, match=r"column\(s\) \['text'\] not found; the dataset has columns \['sentence', 'label'\]"
    ):
        select_labeled_texts(raw, {"text_column": "text", "label_column": "label"}, SAMPLING)
    with pytest.raises(NtpsInputError, match="the dataset is empty"):
        select_labeled_texts(raw.iloc[:0], {"text_column": "sentence", "label_column": "label"}, SAMPLING)
    blank = pd.DataFrame({"sentence": ["  ", ""], "label": [1, 0]})
    with pytest.raises(NtpsInputError, match="empty after dropping empty texts"):
        select_labeled_texts(blank, {"text_column": "sentence", "label_column": "label"}, SAMPLING)
    with pytest.raises(NtpsInputError, match="unknown embedded dataset 'imdb'"):
        read_raw_dataset({"source": "embedded", "embedded_name": "imdb"})
    with pytest.raises(NtpsInputError, match="dataset source must be"):
        read_raw_dataset({"source": "ftp"})


def test_hub_dataset_missing_offline_names_the_id_and_the_fix():
    with pytest.raises(DatasetNotAvailableError, match="(?s)'no-such-org/no-such-dataset'.*offline.*load_dataset"):
        read_raw_dataset(
            {"source": "huggingface", "hf_id": "no-such-org/no-such-dataset", "text_column": "t", "label_column": "y"}
        )


def test_unknown_model_offline_names_the_id_and_the_fix(tmp_path):
    with pytest.raises(
        ModelNotAvailableError, match="(?s)'no-such-org/no-such-model' could not be found offline.*hf download"
    ):
        resolve_model_location({"source": "huggingface", "hf_id": "no-such-org/no-such-model"}, str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="has no config.json"):
        resolve_model_location({"source": "local", "path": str(tmp_path)}, str(tmp_path))


def test_run_grid_refuses_unknown_names():
    parameters = {"run": {"models": ["m"], "datasets": ["d", "e"]}, "models": {"m": {}}, "datasets": {"d": {}}}
    with pytest.raises(NtpsInputError, match=r"run.datasets names \['e'\], which are not in the `datasets:` registry"):
        grid_from_parameters(parameters)
    parameters["datasets"]["e"] = {}
    assert grid_from_parameters(parameters).pairs() == [("m", "d"), ("m", "e")]


def test_summary_k_out_of_range_is_named():
    table = pd.DataFrame({"model": "m", "dataset": "d", "variant": "signal", "layer": 0, "k": [1, 2], "ntps": 0.5})
    with pytest.raises(NtpsInputError, match=r"k fractions must lie in \(0, 1\]"):
        summarize_ntps(table, {"summary_k_fraction": 1.5})


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


def tiny_llama():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return transformers.AutoModel.from_config(config, dtype=torch.float32).eval()


def test_one_padded_forward_gives_train_statistics_and_every_texts_pooled_features():
    """Batched, padded, longest-first: the train split's statistics equal one-text-at-a-time
    accumulation over train texts only, and every text's pooled features are its mean states."""
    model = tiny_llama()
    rng = np.random.default_rng(0)
    lengths = [1, 3, 7, 2, 9, 4, 5]
    tokenized = pd.DataFrame(
        {
            "input_ids": [rng.integers(1, 50, size=n).tolist() for n in lengths],
            "n_tokens": lengths,
            "label_id": [0, 1, 2, 0, 1, 2, 0],
            "split": ["train", "test", "train", "train", "test", "train", "train"],
        }
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
    for name in ("mean_xx", "mean_xy", "cov0", "cov1"):
        reference = getattr(expected, name)
        np.testing.assert_allclose(getattr(batched, name), reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())
    train_features, train_labels = pooled.split("train", 2)
    assert train_features.shape == (5, 16) and train_labels.tolist() == [0, 2, 0, 2, 0]


def test_pooled_hidden_states_are_checked():
    assert resolve_hidden_states("all", 4).tolist() == [0, 1, 2, 3]
    assert resolve_hidden_states([-1, 0], 4).tolist() == [0, 3]
    with pytest.raises(NtpsInputError, match=r"hidden states \[4\] do not exist: the model has 4"):
        resolve_hidden_states([4], 4)
    with pytest.raises(NtpsInputError, match="must be 'all' or a list of integers"):
        resolve_hidden_states("last", 4)

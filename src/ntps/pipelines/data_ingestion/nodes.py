"""Raw labeled texts from embedded packages, the Hugging Face cache or local files."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ntps.sources.text_datasets import read_raw_dataset, select_labeled_texts

logger = logging.getLogger(__name__)


def load_labeled_texts(dataset: dict[str, Any], sampling: dict[str, Any]) -> pd.DataFrame:
    """text, label, label_id, split for one dataset entry of the registry."""
    texts = select_labeled_texts(read_raw_dataset(dataset), dataset, sampling)
    logger.info(
        "%d texts, %d labels, splits %s",
        len(texts),
        texts["label"].nunique(),
        texts["split"].value_counts().to_dict(),
    )
    return texts

"""The NTPS table (every variant, every layer, every k, with its shuffled-label null) and the excess
loss table beside it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ntps.core.errors import NtpsInputError
from ntps.core.label_null import LabelNull, label_permutations
from ntps.core.linalg import linalg_device
from ntps.core.ntps import score_tables
from ntps.core.statistics import LayerStatistics
from ntps.core.subspaces import LayerSubspaces
from ntps.modeling.hidden_states import PooledFeatures


def label_null_inputs(
    pooled_features: dict[str, np.ndarray], statistics: LayerStatistics, settings: dict[str, Any], split: str
) -> LabelNull | None:
    """The shuffled-label null's inputs: the pooled states of the split the statistics summed, for
    every pooled hidden state (forward_pass.pooled_hidden_states), and settings["shuffles"] seeded
    shuffles of their labels; None when settings["shuffles"] is 0."""
    n_shuffles = int(settings["shuffles"])
    if n_shuffles == 0:
        return None
    pooled = PooledFeatures.from_arrays(pooled_features)
    label_ids = pooled.split_labels(split)
    if len(label_ids) != statistics.n_texts:
        raise NtpsInputError(
            f"the pooled features hold {len(label_ids)} '{split}' texts, the statistics {statistics.n_texts}: "
            "they come from different forward passes; rerun hidden_statistics"
        )
    return LabelNull(
        pooled_states=pooled.split_states(split),
        label_ids=label_ids,
        n_classes=statistics.n_classes,
        orderings=label_permutations(len(label_ids), n_shuffles, int(settings["seed"])),
    )


def score_ntps(
    eigen_subspaces: Mapping[str, np.ndarray],
    layer_statistics: Mapping[str, np.ndarray],
    pooled_features: Mapping[str, np.ndarray],
    eigen_settings: dict[str, Any],
    ntps_scores: dict[str, Any],
    forward_pass: dict[str, Any],
    model: str,
    dataset: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    released_code = ntps_scores["released_code"]
    if not isinstance(released_code, bool):
        raise NtpsInputError(f"ntps_scores.released_code must be true or false, got {released_code!r}")
    statistics = LayerStatistics.from_arrays(layer_statistics)
    tables = score_tables(
        statistics,
        LayerSubspaces.from_arrays(eigen_subspaces),
        ridge=float(eigen_settings["ridge"]),
        paper_fractions=ntps_scores["paper_k_fractions"],
        released_code=released_code,
        device=linalg_device(eigen_settings["device"]),
        label_null=label_null_inputs(pooled_features, statistics, ntps_scores["label_null"], forward_pass["split"]),
    )
    for table in tables:
        table.insert(0, "dataset", dataset)
        table.insert(0, "model", model)
    return tables

"""The NTPS table (every variant, every layer, every k) and the excess loss table beside it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ntps.core.errors import NtpsInputError
from ntps.core.linalg import linalg_device
from ntps.core.ntps import score_tables
from ntps.core.statistics import LayerStatistics
from ntps.core.subspaces import LayerSubspaces


def score_ntps(
    eigen_subspaces: dict[str, np.ndarray],
    layer_statistics: dict[str, np.ndarray],
    eigen_settings: dict[str, Any],
    ntps_scores: dict[str, Any],
    model: str,
    dataset: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    released_code = ntps_scores["released_code"]
    if not isinstance(released_code, bool):
        raise NtpsInputError(f"ntps_scores.released_code must be true or false, got {released_code!r}")
    tables = score_tables(
        LayerStatistics.from_arrays(layer_statistics),
        LayerSubspaces.from_arrays(eigen_subspaces),
        ridge=float(eigen_settings["ridge"]),
        paper_fractions=ntps_scores["paper_k_fractions"],
        released_code=released_code,
        device=linalg_device(eigen_settings["device"]),
    )
    for table in tables:
        table.insert(0, "dataset", dataset)
        table.insert(0, "model", model)
    return tables

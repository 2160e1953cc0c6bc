"""The NTPS table: both variants, every layer, every k."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ntps.core.scores import score_table
from ntps.core.subspaces import LayerSubspaces


def score_ntps(
    eigen_subspaces: dict[str, np.ndarray], ntps_scores: dict[str, Any], model: str, dataset: str
) -> pd.DataFrame:
    subspaces = LayerSubspaces.from_arrays(eigen_subspaces)
    table = score_table(
        subspaces.perception_vectors,
        subspaces.autoregressive_vectors,
        subspaces.signal_ranks,
        ntps_scores["paper_k_fractions"],
    )
    table.insert(0, "dataset", dataset)
    table.insert(0, "model", model)
    return table

"""U and V of Theorem 1 for every layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from ntps.core.linalg import linalg_device
from ntps.core.statistics import LayerStatistics
from ntps.core.subspaces import layer_subspaces


def solve_eigen_subspaces(layer_statistics: dict[str, np.ndarray], eigen_subspaces: dict[str, Any]) -> dict[str, np.ndarray]:
    statistics = LayerStatistics.from_arrays(layer_statistics)
    device = linalg_device(eigen_subspaces["device"])
    return layer_subspaces(statistics, ridge=float(eigen_subspaces["ridge"]), device=device).to_arrays()

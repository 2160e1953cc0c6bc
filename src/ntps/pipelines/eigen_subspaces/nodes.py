"""U and V of Theorem 1 for every layer."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from ntps.core.linalg import linalg_device
from ntps.core.statistics import LayerStatistics
from ntps.core.subspaces import stored_layer_subspaces
from ntps.io.layer_stream import LayerStream


def solve_eigen_subspaces(layer_statistics: Mapping[str, np.ndarray], eigen_subspaces: dict[str, Any]) -> LayerStream:
    """The stored subspaces of every layer, solved one layer at a time as the archive is written."""
    statistics = LayerStatistics.from_arrays(layer_statistics)
    solve = functools.partial(
        stored_layer_subspaces,
        statistics,
        ridge=float(eigen_subspaces["ridge"]),
        device=linalg_device(eigen_subspaces["device"]),
    )
    return LayerStream(statistics.n_layers, solve, description="eigen subspaces")

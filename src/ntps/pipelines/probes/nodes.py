"""Linear probes, LogME and H-score on the pooled features of one model x dataset, and a cheap probe
on every pooled layer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ntps.modeling.hidden_states import PooledFeatures
from ntps.modeling.probing import layer_probe_table, probe_metrics_table


def fit_probes(pooled_features: dict[str, np.ndarray], probes: dict[str, Any], model: str, dataset: str) -> pd.DataFrame:
    table = probe_metrics_table(PooledFeatures.from_arrays(pooled_features), probes)
    table.insert(0, "dataset", dataset)
    table.insert(0, "model", model)
    return table


def probe_every_layer(
    pooled_features: dict[str, np.ndarray], probe_metrics: pd.DataFrame, probes: dict[str, Any], model: str, dataset: str
) -> pd.DataFrame:
    table = layer_probe_table(
        PooledFeatures.from_arrays(pooled_features), probes["layers"], probes["logistic"], probe_metrics
    )
    table.insert(0, "dataset", dataset)
    table.insert(0, "model", model)
    return table

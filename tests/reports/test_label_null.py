"""ntps.reports.label_null: where each score stands against its shuffled-label null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ntps.reports.label_null import label_null_markdown, label_null_summary


def table_with_null() -> pd.DataFrame:
    """Two datasets x 2 layers x 4 k of `signal`: set_a above its null at layer 1, k = 3 only;
    set_b never; plus rows without a null (released_code, a k off the paper's grid)."""
    rows = []
    for dataset, layer, k in ((d, layer, k) for d in ("set_a", "set_b") for layer in (0, 1) for k in range(1, 5)):
        above = dataset == "set_a" and (layer, k) == (1, 3)
        rows.append(
            {"model": "m", "dataset": dataset, "layer": layer, "k": k, "k_fraction": k / 4, "on_paper_grid": k != 4}
            | {"variant": "signal", "ntps": 0.5, "null_mean": 0.3 if above else 0.52, "null_sd": 0.01}
            | {"excess_over_null": 0.2 if above else -0.02, "null_p_value": 1 / 21 if above else 0.6, "n_shuffles": 20}
        )
    rows.append(rows[0] | {"variant": "released_code", "null_mean": np.nan, "excess_over_null": np.nan})
    return pd.DataFrame(rows)


def test_the_summary_counts_where_each_score_is_above_its_null_on_the_paper_grid():
    summary = label_null_summary(table_with_null()).set_index("dataset")
    assert list(summary["variant"]) == ["signal", "signal"]  # released_code has no null
    assert (summary["n_configurations"] == 6).all()  # 2 layers x the 3 k on the paper's grid
    assert summary.loc["set_a", "share_above_null"] == pytest.approx(1 / 6)
    assert summary.loc["set_b", "share_above_null"] == 0 and summary.loc["set_b", "share_below_null_mean"] == 1
    best = summary.loc["set_a"]
    assert (best["max_excess"], best["max_excess_layer"], best["max_excess_k"]) == (pytest.approx(0.2), 1, 3)
    report = "\n".join(label_null_markdown(label_null_summary(table_with_null())))
    assert "| m | set_a | signal | 6 | 0.17 | 0.83 |" in report
    assert "Never above its null anywhere on the grid: set_b `signal`." in report


def test_a_table_without_a_null_gives_an_empty_summary_and_says_so():
    table = table_with_null().drop(columns=["null_mean", "null_sd", "excess_over_null", "null_p_value", "n_shuffles"])
    summary = label_null_summary(table)
    assert summary.empty
    assert "No null was computed" in "\n".join(label_null_markdown(summary))

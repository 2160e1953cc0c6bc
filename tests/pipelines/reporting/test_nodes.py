"""The reporting stage's nodes: summary metrics and heatmaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ntps.core.errors import NtpsInputError
from ntps.core.ntps import score_tables, scored_variants
from ntps.core.subspaces import layer_subspaces
from ntps.pipelines.reporting.nodes import plot_ntps_heatmaps, summarize_ntps
from tests.core.synthetic import accumulate, random_texts


@pytest.mark.parametrize("released_code", [True, False])
def test_heatmaps_draw_one_column_per_variant_the_table_holds(released_code):
    rng = np.random.default_rng(18)
    texts, labels = random_texts(rng, n_texts=40, max_length=8)
    statistics = accumulate(texts, labels)
    subspaces = layer_subspaces(statistics, ridge=1e-6)
    ntps_table, _ = score_tables(statistics, subspaces, 1e-6, [0.5], released_code=released_code)
    ntps_table.insert(0, "dataset", "synthetic")
    ntps_table.insert(0, "model", "random")
    figure = plot_ntps_heatmaps(ntps_table)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    drawn = [title.split(": ")[1].split(" ")[0] for title in titles]
    assert drawn == scored_variants(ntps_table)
    assert ("released_code" in drawn) == released_code


def test_summary_k_out_of_range_is_named():
    table = pd.DataFrame({"model": "m", "dataset": "d", "variant": "signal", "layer": 0, "k": [1, 2], "ntps": 0.5})
    with pytest.raises(NtpsInputError, match=r"k fractions must lie in \(0, 1\]"):
        summarize_ntps(table, {"summary_k_fraction": 1.5})

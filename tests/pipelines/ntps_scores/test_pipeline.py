"""The ntps_scores stage in memory: every variant for every layer and k, labelled with its pair, with
its shuffled-label null."""

from __future__ import annotations

import pytest

from ntps.core.ntps import VARIANTS
from ntps.core.released_code import RELEASED_FRACTIONS
from ntps.pipelines import ntps_scores
from tests.pipelines.conftest import DATASETS, MODEL, build, run_in_memory


@pytest.mark.parametrize("released_code", [True, False])
def test_every_pair_gets_its_labelled_score_and_loss_tables(stage_parameters, stage_data, released_code):
    parameters = {**stage_parameters, "ntps_scores": {**stage_parameters["ntps_scores"], "released_code": released_code}}
    outputs = run_in_memory(build(ntps_scores, parameters), parameters, stage_data)
    n_layers, d = 3, 16
    for dataset in DATASETS:
        table = outputs[f"{MODEL}.{dataset}.ntps_table"]
        assert (table["model"] == MODEL).all() and (table["dataset"] == dataset).all()
        counts = table.groupby("variant").size().to_dict()
        assert counts == {
            **{variant: n_layers * d for variant in VARIANTS if variant != "released_code"},
            **({"released_code": n_layers * len(RELEASED_FRACTIONS)} if released_code else {}),
        }
        # At d = 16 the released fraction 0.05 keeps int(0.05 * 16) = 0 columns: the released
        # procedure's 0 / 0. Every other score lies in [0, 1].
        undefined = table["ntps"].isna()
        assert (table.loc[undefined, "variant"] == "released_code").all() and (table.loc[undefined, "k"] == 0).all()
        assert table.loc[~undefined, "ntps"].between(-1e-9, 1 + 1e-9).all()
        # The shuffled-label null on every pooled layer (all of them by default), for the variants
        # it is defined for: paper up to the signal rank, signal and label_variance_kept at every k.
        shuffles = parameters["ntps_scores"]["label_null"]["shuffles"]
        with_null = table[table["null_mean"].notna()]
        assert set(with_null["variant"]) == {"paper", "signal", "label_variance_kept"}
        assert (with_null["n_shuffles"] == shuffles).all() and set(with_null["layer"]) == set(range(n_layers))
        paper = with_null[with_null["variant"] == "paper"]
        assert (paper["k"] <= paper["signal_rank"]).all()
        assert with_null["null_p_value"].between(1 / (shuffles + 1), 1).all()
        losses = outputs[f"{MODEL}.{dataset}.excess_loss_table"]
        assert len(losses) == n_layers * d and (losses["dataset"] == dataset).all()
        assert (losses["excess_loss"] >= -1e-9 * losses["explainable_label_variance"]).all()

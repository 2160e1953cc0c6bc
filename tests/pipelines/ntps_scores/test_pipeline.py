"""The ntps_scores stage in memory: every variant for every layer and k, labelled with its pair."""

from __future__ import annotations

from ntps.core.ntps import VARIANTS
from ntps.core.released_code import RELEASED_FRACTIONS
from ntps.pipelines import ntps_scores
from tests.pipelines.conftest import DATASETS, MODEL, build, run_in_memory


def test_every_pair_gets_its_labelled_score_and_loss_tables(stage_parameters, stage_data):
    outputs = run_in_memory(build(ntps_scores, stage_parameters), stage_parameters, stage_data)
    n_layers, d = 3, 16
    for dataset in DATASETS:
        table = outputs[f"{MODEL}.{dataset}.ntps_table"]
        assert (table["model"] == MODEL).all() and (table["dataset"] == dataset).all()
        counts = table.groupby("variant").size().to_dict()
        assert counts == {
            **{variant: n_layers * d for variant in VARIANTS if variant != "released_code"},
            "released_code": n_layers * len(RELEASED_FRACTIONS),
        }
        # At d = 16 the released fraction 0.05 keeps int(0.05 * 16) = 0 columns: the released
        # procedure's 0 / 0. Every other score lies in [0, 1].
        undefined = table["ntps"].isna()
        assert (table.loc[undefined, "variant"] == "released_code").all() and (table.loc[undefined, "k"] == 0).all()
        assert table.loc[~undefined, "ntps"].between(-1e-9, 1 + 1e-9).all()
        losses = outputs[f"{MODEL}.{dataset}.excess_loss_table"]
        assert len(losses) == n_layers * d and (losses["dataset"] == dataset).all()
        assert (losses["excess_loss"] >= -1e-9 * losses["explainable_label_variance"]).all()

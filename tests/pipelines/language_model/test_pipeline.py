"""The language_model stage in memory: one card per run model, read from its config alone."""

from __future__ import annotations

from ntps.pipelines import language_model
from tests.pipelines.conftest import MODEL, build, run_in_memory, tiny_folder


def test_each_run_model_gets_a_card_with_its_depth_and_width(stage_parameters):
    outputs = run_in_memory(build(language_model, stage_parameters), stage_parameters, {})
    card = outputs[f"{MODEL}.language_model_card"]
    assert set(outputs) == {f"{MODEL}.language_model_card"}
    assert card["location"] == str(tiny_folder(stage_parameters))
    assert (card["n_hidden_states"], card["hidden_size"]) == (3, 16)  # embeddings + 2 blocks, width 16
    assert card["architecture"] == "LlamaModel" and card["spec"]["source"] == "local"

"""ntps.modeling.training: a resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import torch

from ntps.modeling.classifiers import (
    lora_classifier,
    trainable_state,
)
from ntps.modeling.training import train_classifier
from tests.modeling.tiny_models import SETTINGS, tiny_llama, tokenized_texts


def test_a_resumed_run_ends_with_the_adapter_of_an_uninterrupted_one(tmp_path):
    texts = tokenized_texts(16, seed=3)
    uninterrupted = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    straight_losses = train_classifier(
        uninterrupted, texts, SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "straight.pt"
    )

    killed = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    killed_losses = train_classifier(
        killed, texts, SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "resumed.pt", stop_after=3
    )
    assert len(killed_losses) == 3
    restarted = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)  # a new process, from the checkpoint
    resumed_losses = train_classifier(restarted, texts, SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "resumed.pt")
    assert resumed_losses == straight_losses and resumed_losses[:3] == killed_losses, "the loss log survives the restart"

    expected, resumed = trainable_state(uninterrupted), trainable_state(restarted)
    assert expected.keys() == resumed.keys()
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=0)

"""ntps.modeling.training: a resumed run ends where an uninterrupted one does, in float32 and under
bfloat16 autocast; the autocast, optimizer, length and validation settings do what they say."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch

from ntps.core.errors import NtpsInputError
from ntps.core.learning_curves import plateau
from ntps.modeling.classifiers import lora_classifier, trainable_state
from ntps.modeling.training import (
    autocast_dtype,
    optimizer_with_schedule,
    train_classifier,
    training_accuracy_texts,
    training_attention,
    training_steps,
    validation_split,
)
from tests.modeling.tiny_models import SETTINGS, tiny_llama, tokenized_texts


@pytest.mark.parametrize("autocast", ["none", "bfloat16"])
@pytest.mark.parametrize("optimizer", ["adafactor", "adamw"])
def test_a_resumed_run_ends_with_the_adapter_of_an_uninterrupted_one(tmp_path, autocast, optimizer):
    settings = {**SETTINGS, "autocast": autocast, "optimizer": optimizer, "evaluations_per_epoch": 2}
    texts, validation = tokenized_texts(16, seed=3), tokenized_texts(8, seed=4)
    uninterrupted = lora_classifier(tiny_llama(), n_classes=3, settings=settings, seed=0)
    straight = train_classifier(
        uninterrupted, texts, settings, pad_token_id=0, checkpoint_path=tmp_path / "straight.pt", validation=validation
    )
    # 16 texts in batches of 4 are an epoch of 4 steps: a validation accuracy every 2 steps, and at the end.
    assert straight.validation_steps == [2, 4, 6] and all(0 <= value <= 1 for value in straight.validation_accuracies)

    killed = lora_classifier(tiny_llama(), n_classes=3, settings=settings, seed=0)
    killed_history = train_classifier(
        killed, texts, settings, pad_token_id=0, checkpoint_path=tmp_path / "resumed.pt", stop_after=3, validation=validation
    )
    assert len(killed_history.losses) == 3
    restarted = lora_classifier(tiny_llama(), n_classes=3, settings=settings, seed=0)  # a new process, from the checkpoint
    resumed = train_classifier(
        restarted, texts, settings, pad_token_id=0, checkpoint_path=tmp_path / "resumed.pt", validation=validation
    )
    assert resumed == straight and resumed.losses[:3] == killed_history.losses, "the history survives the restart"

    expected, restored = trainable_state(uninterrupted), trainable_state(restarted)
    assert expected.keys() == restored.keys()
    for name in expected:
        torch.testing.assert_close(restored[name], expected[name], rtol=0, atol=0)


def test_autocast_is_bfloat16_where_the_device_computes_in_it_and_none_elsewhere():
    cpu = torch.device("cpu")
    assert autocast_dtype("none", cpu) is None and autocast_dtype("bfloat16", cpu) is torch.bfloat16
    with mock.patch("ntps.sources.language_models.cpu_has_bfloat16_units", return_value=True):
        assert autocast_dtype("auto", cpu) is torch.bfloat16
    with mock.patch("ntps.sources.language_models.cpu_has_bfloat16_units", return_value=False):
        assert autocast_dtype("auto", cpu) is None
    for supported, expected in ((True, torch.bfloat16), (False, None)):
        with mock.patch("torch.cuda.is_bf16_supported", return_value=supported):
            assert autocast_dtype("auto", torch.device("cuda")) is expected
    assert autocast_dtype("auto", torch.device("mps")) is None
    with pytest.raises(NtpsInputError, match="training.autocast must be one of"):
        autocast_dtype("float16", cpu)


def test_bfloat16_autocast_changes_the_forward_dtype_and_little_else(tmp_path):
    """Autocast runs the backbone's matrix products in bfloat16 (its states differ from float32's)
    while the losses of a short run stay close to float32's."""
    texts = tokenized_texts(16, seed=3)
    histories = {}
    for autocast in ("none", "bfloat16"):
        classifier = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
        settings = {**SETTINGS, "autocast": autocast}
        histories[autocast] = train_classifier(
            classifier, texts, settings, pad_token_id=0, checkpoint_path=tmp_path / f"{autocast}.pt"
        )
    float32, bfloat16 = (np.asarray(histories[name].losses) for name in ("none", "bfloat16"))
    assert not np.array_equal(float32, bfloat16)
    np.testing.assert_allclose(bfloat16, float32, rtol=0.05)


def test_the_optimizer_and_the_training_length_are_chosen_by_name():
    classifier = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    adamw, schedule = optimizer_with_schedule(classifier, {**SETTINGS, "optimizer": "adamw", "warmup_fraction": 0.5}, 4)
    assert isinstance(adamw, torch.optim.AdamW) and schedule.get_last_lr()[0] == 0.0  # warming up from zero
    for _ in range(2):
        adamw.step()
        schedule.step()
    assert schedule.get_last_lr()[0] == pytest.approx(SETTINGS["learning_rate"])  # the peak, then cosine decay
    with pytest.raises(NtpsInputError, match="must be one of"):
        optimizer_with_schedule(classifier, {**SETTINGS, "optimizer": "sgd"}, 4)
    assert training_steps({"steps": 7, "batch_size": 4}, 100) == 7
    assert training_steps({"steps": None, "epochs": 3, "batch_size": 16}, 100) == 18  # 6 whole batches per epoch
    assert training_steps({"epochs": 0.5, "batch_size": 16}, 100) == 3
    for both_or_neither in ({"steps": 5, "epochs": 2, "batch_size": 4}, {"steps": None, "batch_size": 4}):
        with pytest.raises(NtpsInputError, match="exactly one of steps and epochs"):
            training_steps(both_or_neither, 100)


def test_the_validation_split_is_a_seeded_stratified_share_of_the_training_texts():
    texts = pd.DataFrame({"label_id": np.repeat([0, 1, 2], [60, 30, 10]), "text_id": np.arange(100)})
    kept, validation = validation_split(texts, 0.2, seed=0)
    assert len(validation) == 20 and set(kept["text_id"]).isdisjoint(validation["text_id"])
    assert validation["label_id"].value_counts().to_dict() == {0: 12, 1: 6, 2: 2}
    again_kept, again = validation_split(texts, 0.2, seed=0)
    assert again.equals(validation) and again_kept.equals(kept)
    assert validation_split(texts, 0.0, seed=0)[1].empty
    with pytest.raises(NtpsInputError, match="validation_fraction"):
        validation_split(texts, 1.0, seed=0)


def test_the_training_accuracy_is_measured_on_a_seeded_stratified_sample_or_on_every_training_text():
    texts = pd.DataFrame({"label_id": np.repeat([0, 1, 2], [60, 30, 10]), "text_id": np.arange(100)})
    sample = training_accuracy_texts(texts, 20, seed=0)
    assert len(sample) == 20 and sample["label_id"].value_counts().to_dict() == {0: 12, 1: 6, 2: 2}
    assert training_accuracy_texts(texts, 20, seed=0).equals(sample)
    assert not training_accuracy_texts(texts, 20, seed=1).equals(sample)
    assert set(sample["text_id"]) <= set(texts["text_id"])
    for everything in (None, 100, 500):
        assert training_accuracy_texts(texts, everything, seed=0) is texts
    assert len(training_accuracy_texts(texts, 2, seed=0)) == 2  # too few to hold every label: not stratified
    for wrong in (0, -3, 2.5, "all", True):
        with pytest.raises(NtpsInputError, match="train_accuracy_texts"):
            training_accuracy_texts(texts, wrong, seed=0)


class PlantedCurve:
    """Stands in for training.accuracy: the planted validation accuracies, one per evaluation, in order."""

    def __init__(self, accuracies: list[float]):
        self.accuracies, self.calls = accuracies, 0

    def __call__(self, *args, **kwargs) -> float:
        self.calls += 1
        return self.accuracies[self.calls - 1]


def test_training_stops_at_the_first_evaluation_where_the_curve_levels_off_and_a_resumed_run_stops_there_too(tmp_path):
    # 16 texts in batches of 4: an epoch of 4 steps, 2 evaluations per epoch, 8 validation texts.
    settings = {**SETTINGS, "steps": 24, "evaluations_per_epoch": 2, "stop_at_plateau": True}
    texts, validation = tokenized_texts(16, seed=3), tokenized_texts(8, seed=4)
    rising = [0.1, 0.3, 0.5, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    # The criterion on each prefix of the planted curve, computed here: it first holds at the 7th evaluation.
    held = [plateau(2 * np.arange(1, m + 1), np.asarray(rising[:m]), 2, len(validation)).reached for m in range(1, 13)]
    assert held.index(True) == 6

    classifier = lora_classifier(tiny_llama(), n_classes=3, settings=settings, seed=0)
    with mock.patch("ntps.modeling.training.accuracy", PlantedCurve(rising)):
        straight = train_classifier(classifier, texts, settings, 0, tmp_path / "straight.pt", validation=validation)
    assert straight.validation_steps == [2, 4, 6, 8, 10, 12, 14] and len(straight.losses) == 14

    killed_curve = PlantedCurve(rising)  # one process's evaluations, then the restarted one's
    killed = lora_classifier(tiny_llama(), n_classes=3, settings=settings, seed=0)
    restarted = lora_classifier(tiny_llama(), n_classes=3, settings=settings, seed=0)
    with mock.patch("ntps.modeling.training.accuracy", killed_curve):
        train_classifier(killed, texts, settings, 0, tmp_path / "resumed.pt", stop_after=5, validation=validation)
        resumed = train_classifier(restarted, texts, settings, 0, tmp_path / "resumed.pt", validation=validation)
    assert resumed == straight
    expected, restored = trainable_state(classifier), trainable_state(restarted)
    for name in expected:
        torch.testing.assert_close(restored[name], expected[name], rtol=0, atol=0)

    again = lora_classifier(tiny_llama(), n_classes=3, settings=settings, seed=0)
    with mock.patch("ntps.modeling.training.accuracy", PlantedCurve([])) as untouched:
        assert train_classifier(again, texts, settings, 0, tmp_path / "resumed.pt", validation=validation) == straight
    assert untouched.calls == 0, "a run that had stopped at its plateau neither trains nor evaluates again"

    still_rising, more_validation = [0.05 * (i + 1) for i in range(12)], tokenized_texts(32, seed=4)  # gains > 1 error
    with mock.patch("ntps.modeling.training.accuracy", PlantedCurve(still_rising)):
        full = train_classifier(classifier, texts, settings, 0, tmp_path / "rising.pt", validation=more_validation)
    assert len(full.losses) == 24, "a curve that keeps rising trains every configured step"


def test_training_uses_eager_attention_on_a_cpu_which_trains_as_sdpa_does(tmp_path):
    assert training_attention(torch.device("cpu")) == "eager"
    assert training_attention(torch.device("cuda")) == "sdpa"
    texts = tokenized_texts(16, seed=3)
    losses = {}
    for attention in ("eager", "sdpa"):
        backbone = tiny_llama()
        backbone.set_attn_implementation(attention)
        assert backbone.config._attn_implementation == attention
        classifier = lora_classifier(backbone, n_classes=3, settings=SETTINGS, seed=0)
        history = train_classifier(classifier, texts, SETTINGS, 0, tmp_path / f"{attention}.pt")
        losses[attention] = np.asarray(history.losses)
    np.testing.assert_allclose(losses["eager"], losses["sdpa"], rtol=1e-5)

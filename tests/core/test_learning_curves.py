"""ntps.core.learning_curves: the plateau criterion on planted learning curves."""

from __future__ import annotations

import numpy as np
import pytest

from ntps.core.errors import NtpsInputError
from ntps.core.learning_curves import beats_chance, plateau


def test_a_curve_that_has_levelled_off_reaches_its_plateau_where_it_flattens():
    steps = np.arange(1, 13) * 10
    # Rising for four evaluations, then flat at 0.80 for two epochs of four evaluations each.
    accuracies = np.array([0.50, 0.60, 0.70, 0.79, 0.80, 0.80, 0.81, 0.80, 0.80, 0.81, 0.80, 0.80])
    verdict = plateau(steps, accuracies, evaluations_per_epoch=4, n_validation=400)
    assert verdict.reached and verdict.standard_error == pytest.approx(np.sqrt(0.8025 * 0.1975 / 400))
    assert verdict.last_epoch_gain == pytest.approx(0.8025 - 0.8025)
    assert verdict.step == 40  # 0.79 is within one standard error (0.0199) of 0.8025; 0.70 is not


def test_a_curve_still_climbing_by_more_than_the_noise_has_not():
    steps = np.arange(1, 9)
    accuracies = np.linspace(0.5, 0.9, 8)
    verdict = plateau(steps, accuracies, evaluations_per_epoch=4, n_validation=400)
    assert not verdict.reached and verdict.last_epoch_gain == pytest.approx(4 * 0.4 / 7)


def test_a_gain_within_the_noise_of_few_validation_texts_counts_as_levelled_off():
    accuracies = np.array([0.60, 0.62, 0.64, 0.66])
    # A gain of 0.04 per epoch: beyond the noise of 1,000 validation texts (0.015), within that of 50 (0.067).
    assert not plateau(np.arange(4), accuracies, 2, n_validation=1000).reached
    assert plateau(np.arange(4), accuracies, 2, n_validation=50).reached


def test_a_curve_shorter_than_two_epochs_cannot_say_and_bad_input_is_refused():
    verdict = plateau(np.arange(3), np.array([0.5, 0.6, 0.7]), evaluations_per_epoch=2, n_validation=100)
    assert not verdict.reached and np.isnan(verdict.last_epoch_gain) and verdict.step == -1
    with pytest.raises(NtpsInputError, match="as many steps as accuracies"):
        plateau(np.arange(3), np.array([0.5, 0.6]), 1, 100)
    with pytest.raises(NtpsInputError, match="at least one evaluation per epoch"):
        plateau(np.arange(2), np.array([0.5, 0.6]), 0, 100)


def test_an_accuracy_beats_chance_only_by_more_than_two_standard_errors_of_one_at_chance():
    # At chance 0.5 on 100 texts one standard error is 0.05: 0.60 is exactly two, 0.61 beyond.
    assert not beats_chance(0.60, 0.5, 100) and beats_chance(0.61, 0.5, 100)
    assert beats_chance(0.61, 0.5, 100, standard_errors=1) and not beats_chance(0.5, 0.5, 10_000)
    # A fine-tune collapsed onto the majority class scores its share, however many texts.
    assert not beats_chance(0.584, 0.584, 173) and not beats_chance(float("nan"), 0.5, 100)
    with pytest.raises(NtpsInputError, match="at least one text"):
        beats_chance(0.7, 0.5, 0)

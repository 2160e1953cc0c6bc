"""Whether a fine-tune's validation accuracy has levelled off, from its learning curve alone, and
whether it learned anything at all.

The criterion: the mean validation accuracy of the last epoch's evaluations exceeds that of the
epoch before by at most one binomial standard error of an accuracy on that many validation texts,
sqrt(p (1 - p) / n) at the last epoch's mean p. A gain smaller than the noise of one accuracy on the
validation texts is no evidence that more steps would help; a curve shorter than two epochs of
evaluations cannot say.

A fine-tune that diverged or collapsed onto one class levels off too, at chance: `beats_chance` tells
it apart, so that its accuracy is not read as what fine-tuning can do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntps.core.errors import NtpsInputError


@dataclass(frozen=True)
class Plateau:
    """reached: the criterion holds (False too when the curve is shorter than two epochs);
    last_epoch_gain: the last epoch's mean accuracy minus the one before's (NaN when too short);
    standard_error: the binomial standard error it is compared with; step: the first evaluated step
    whose accuracy is within one standard error of the last epoch's mean (the steps to the plateau,
    -1 when too short)."""

    reached: bool
    last_epoch_gain: float
    standard_error: float
    step: int


def plateau(steps: np.ndarray, accuracies: np.ndarray, evaluations_per_epoch: int, n_validation: int) -> Plateau:
    """The plateau criterion (module docstring) on a learning curve.

    Args:
        steps: (m,) the training steps at which the validation accuracy was measured, increasing.
        accuracies: (m,) the validation accuracies there.
        evaluations_per_epoch: how many of the m evaluations make one epoch.
        n_validation: the number of validation texts.
    """
    steps, accuracies = np.asarray(steps), np.asarray(accuracies, dtype=np.float64)
    if steps.shape != accuracies.shape or steps.ndim != 1:
        raise NtpsInputError(f"a learning curve needs as many steps as accuracies, got {steps.shape} and {accuracies.shape}")
    if evaluations_per_epoch < 1 or n_validation < 1:
        raise NtpsInputError("a plateau needs at least one evaluation per epoch and one validation text")
    window = evaluations_per_epoch
    if len(accuracies) < 2 * window:
        return Plateau(False, float("nan"), float("nan"), -1)
    last, previous = accuracies[-window:].mean(), accuracies[-2 * window : -window].mean()
    standard_error = float(np.sqrt(max(last * (1 - last), 0.0) / n_validation))
    reached_at = int(steps[np.argmax(accuracies >= last - standard_error)])
    return Plateau(bool(last - previous <= standard_error), float(last - previous), standard_error, reached_at)


def beats_chance(accuracy: float, chance: float, n_texts: int, standard_errors: float = 2.0) -> bool:
    """Whether an accuracy measured on n_texts exceeds chance (the majority class's share) by more than
    `standard_errors` binomial standard errors of an accuracy at chance, sqrt(chance (1 - chance) / n_texts).
    A NaN accuracy (nothing measured) does not."""
    if n_texts < 1 or not 0 <= chance <= 1:
        raise NtpsInputError(f"chance needs a rate in [0, 1] and at least one text, got {chance} on {n_texts}")
    return bool(accuracy - chance > standard_errors * np.sqrt(chance * (1 - chance) / n_texts))

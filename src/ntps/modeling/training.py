"""The training loop shared by LoRA and training from scratch: Adafactor (the paper's) or AdamW with a
cosine schedule after a linear warm-up, bfloat16 autocast where the device computes in it, seeded
batches, a validation split carved from the training texts with its learning curve (and, where asked,
a stop once it levels off), periodic checkpoints a killed run resumes from, and accuracy on each split."""

from __future__ import annotations

import logging
import math
import os
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import transformers
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm
from transformers.optimization import Adafactor

from ntps.core.errors import NtpsInputError
from ntps.core.learning_curves import beats_chance
from ntps.core.probes import majority_rate
from ntps.modeling.checkpoints import TrainingHistory, resume_checkpoint, run_checkpoint_path, save_checkpoint
from ntps.modeling.classifiers import MeanPooledClassifier
from ntps.modeling.hidden_states import padded_batches
from ntps.sources.language_models import computes_in_bfloat16

logger = logging.getLogger(__name__)


OPTIMIZERS = ("adafactor", "adamw")
AUTOCAST = ("auto", "bfloat16", "none")


def optimizer_with_schedule(
    classifier: torch.nn.Module, settings: dict[str, Any], steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """settings["optimizer"]: "adafactor", the paper's (fixed learning rate, clipped updates), or
    "adamw"; either with a cosine schedule whose first warmup_fraction of the steps warm up linearly
    (after the warm-up, a one-cycle schedule's shape)."""
    parameters = [parameter for parameter in classifier.parameters() if parameter.requires_grad]
    name = settings.get("optimizer", "adafactor")
    if name == "adafactor":
        optimizer = Adafactor(
            parameters,
            lr=settings["learning_rate"],
            eps=tuple(settings["eps"]),
            clip_threshold=settings["clip_threshold"],
            decay_rate=-settings["decay_rate"],  # transformers' convention: the exponent of the decay is negative
            weight_decay=settings["weight_decay"],
            relative_step=False,
            scale_parameter=False,
            warmup_init=False,
        )
    elif name == "adamw":
        optimizer = torch.optim.AdamW(parameters, lr=settings["learning_rate"], weight_decay=settings["weight_decay"])
    else:
        raise NtpsInputError(f"training.optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")
    warmup = int(round(settings["warmup_fraction"] * steps))
    return optimizer, transformers.get_cosine_schedule_with_warmup(optimizer, warmup, steps)


def autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The dtype the forward and backward passes autocast to: bfloat16 for "bfloat16", none for "none",
    and for "auto" bfloat16 where the device computes in it (a CUDA GPU that supports it, a CPU with
    bfloat16 units) and none elsewhere. Weights, gradients and optimizer state stay in their own dtype."""
    if setting not in AUTOCAST:
        raise NtpsInputError(f"training.autocast must be one of {list(AUTOCAST)}, got {setting!r}")
    if setting == "none":
        return None
    if setting == "bfloat16":
        return torch.bfloat16
    return torch.bfloat16 if computes_in_bfloat16(device) else None


def training_attention(device: torch.device) -> str:
    """The attention implementation a trained backbone is loaded with: "eager" (matrix products and a
    softmax) on a CPU, where PyTorch's fused attention is slow to differentiate at this project's text
    lengths (`benchmarks/ntps_benchmark.py --measure lora` times a LoRA step with each), and "sdpa"
    elsewhere. The two compute the same function up to rounding."""
    return "eager" if device.type == "cpu" else "sdpa"


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def training_steps(settings: dict[str, Any], n_train: int) -> int:
    """settings["steps"], or settings["epochs"] passes over n_train texts in whole batches; exactly
    one of the two is set."""
    steps, epochs = settings.get("steps"), settings.get("epochs")
    if (steps is None) == (epochs is None):
        raise NtpsInputError(f"set exactly one of steps and epochs for training, got steps={steps}, epochs={epochs}")
    if epochs is not None:
        steps = math.ceil(float(epochs) * max(1, n_train // int(settings["batch_size"])))
    if int(steps) < 1:
        raise NtpsInputError(f"training needs at least one step, got {steps}")
    return int(steps)


def evaluation_interval(settings: dict[str, Any], n_train: int) -> int:
    """Steps between two validation accuracies: settings["evaluations_per_epoch"] per epoch."""
    return max(1, (n_train // int(settings["batch_size"])) // int(settings["evaluations_per_epoch"]))


def _training_batches(train: pd.DataFrame, batch_size: int, pad_token_id: int, seed: int, step: int):
    """The batch of a given step: a seeded shuffle per epoch, so a resumed run sees the same data."""
    batches_per_epoch = max(1, len(train) // batch_size)
    epoch, index = divmod(step, batches_per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(len(train))
    rows = train.iloc[order[index * batch_size : (index + 1) * batch_size]]
    return next(iter(padded_batches(rows, batch_size, pad_token_id)))[1:]


def train_classifier(
    classifier: MeanPooledClassifier,
    train: pd.DataFrame,
    settings: dict[str, Any],
    pad_token_id: int,
    checkpoint_path: str | os.PathLike,
    stop_after: int | None = None,
    description: str = "LoRA training",
    validation: pd.DataFrame | None = None,
) -> TrainingHistory:
    """Trains for training_steps(settings, len(train)) steps of settings["batch_size"] texts,
    autocast as autocast_dtype(settings["autocast"]) says, measuring the accuracy on `validation`
    every evaluation_interval steps, checkpointing the trainable parameters, optimizer, schedule,
    random state and history every checkpoint_every steps and resuming from checkpoint_path when it
    exists. With settings["stop_at_plateau"] it stops at the first evaluation where the learning curve
    has levelled off (learning_curves.plateau), before the configured steps.

    Args:
        train: tokenized training texts (input_ids, n_tokens, label_id).
        stop_after: stop after this many steps in this call (to test resuming); None runs to the end.
        description: the progress bar's label.
        validation: tokenized texts for the learning curve, or None for none.

    Returns:
        the history so far, that of an interrupted earlier call included.
    """
    seed = int(settings["seed"])
    if len(train) < settings["batch_size"]:
        raise NtpsInputError(f"{len(train)} training texts are fewer than one batch of {settings['batch_size']}")
    steps = training_steps(settings, len(train))
    device = next(classifier.parameters()).device
    dtype = autocast_dtype(settings.get("autocast", "none"), device)
    interval = evaluation_interval(settings, len(train)) if validation is not None and len(validation) else 0
    stop_at_plateau = bool(settings.get("stop_at_plateau", False)) and interval > 0

    def levelled_off(history: TrainingHistory) -> bool:
        return history.plateau(int(settings["evaluations_per_epoch"]), len(validation)).reached

    optimizer, schedule = optimizer_with_schedule(classifier, settings, steps)
    checkpoint_path = Path(checkpoint_path)
    step, history = 0, TrainingHistory()
    torch.manual_seed(seed)
    resumed = resume_checkpoint(checkpoint_path, classifier, optimizer, schedule)
    if resumed is not None:
        step, history = resumed
        logger.info("resuming %s from step %d of %d (%s)", description, step, steps, checkpoint_path)
    classifier.train()
    last = steps if stop_after is None else min(steps, step + stop_after)
    if stop_at_plateau and levelled_off(history):  # a resumed run that had stopped there
        last = step
    for step in tqdm(range(step, last), initial=step, total=steps, desc=description, unit="step"):
        input_ids, attention_mask, label_ids = _training_batches(train, settings["batch_size"], pad_token_id, seed, step)
        with autocast(device, dtype):
            logits = classifier(input_ids.to(device), attention_mask.to(device))
        loss = torch.nn.functional.cross_entropy(logits.float(), label_ids.to(device))
        loss_value = loss.item()
        if not np.isfinite(loss_value):
            raise FloatingPointError(
                f"{description}: the loss is {loss_value} at step {step}; the last checkpoint is kept at {checkpoint_path}"
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        history.losses.append(loss_value)
        stopping = False
        if interval and ((step + 1) % interval == 0 or step + 1 == steps):
            history.validation_steps.append(step + 1)
            history.validation_accuracies.append(
                accuracy(classifier, validation, settings["batch_size"], pad_token_id, dtype)
            )
            classifier.train()
            stopping = stop_at_plateau and step + 1 < steps and levelled_off(history)
        if (step + 1) % settings["checkpoint_every"] == 0 or step + 1 == last or stopping:
            save_checkpoint(checkpoint_path, classifier, optimizer, schedule, step + 1, history)
        if stopping:
            logger.info("%s: the validation accuracy levelled off; stopping at step %d of %d", description, step + 1, steps)
            break
    classifier.eval()
    return history


def accuracy(
    classifier: MeanPooledClassifier,
    texts: pd.DataFrame,
    batch_size: int,
    pad_token_id: int,
    dtype: torch.dtype | None = None,
) -> float:
    """Share of texts whose highest logit is their label, the forward autocast to dtype (None: not)."""
    device = next(classifier.parameters()).device
    correct = 0
    classifier.eval()
    with torch.inference_mode(), autocast(device, dtype):
        for _, input_ids, attention_mask, label_ids in padded_batches(texts, batch_size, pad_token_id):
            predicted = classifier(input_ids.to(device), attention_mask.to(device)).argmax(dim=-1).cpu()
            correct += int((predicted == label_ids).sum())
    return correct / len(texts)


def validation_split(train: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the texts to train on, the validation texts): a seeded share `fraction` of the training
    texts, stratified by label where every label has two texts or more; fraction 0 keeps them all."""
    if not 0 <= fraction < 1:
        raise NtpsInputError(f"training.validation_fraction must be in [0, 1), got {fraction}")
    if fraction == 0:
        return train, train.iloc[:0]
    return _seeded_split(train, fraction, seed)


def training_accuracy_texts(train: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    """The training texts the training accuracy after training is measured on: all of them (size
    None, or at least as many), or a seeded sample of `size`, stratified by label as validation_split."""
    if size is None:
        return train
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise NtpsInputError(f"training.train_accuracy_texts must be a positive integer or null, got {size!r}")
    return train if size >= len(train) else _seeded_split(train, size, seed)[1]


def _seeded_split(texts: pd.DataFrame, taken: float | int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the texts left, the texts taken): `taken` of them (a share or a count), seeded, stratified
    by label where every label has two texts or more and the taken ones can hold every label."""
    counts = texts["label_id"].value_counts()
    n_taken = taken if isinstance(taken, int) else int(np.ceil(taken * len(texts)))
    stratify = texts["label_id"] if counts.min() >= 2 and min(n_taken, len(texts) - n_taken) >= len(counts) else None
    kept, chosen = train_test_split(texts, test_size=taken, random_state=seed, stratify=stratify)
    return kept.sort_index(), chosen.sort_index()


def train_and_score(
    classifier: MeanPooledClassifier,
    tokenized_texts: pd.DataFrame,
    language_model_card: dict[str, Any],
    settings: dict[str, Any],
    pad_token_id: int,
    kind: str,
    model: str,
    dataset: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trains on the texts of split "train" less a validation share (validation_split, by
    settings["validation_fraction"]; train_classifier, resuming from and checkpointing to
    checkpoints.run_checkpoint_path) and scores every split; the checkpoint is removed at the end, as
    the caller's versioned outputs then hold the result.

    Args:
        kind: names the run ("lora", "scratch"): its checkpoint, progress bar and metric columns.

    Returns:
        (one row: model, dataset, steps (trained), planned_steps (configured; more than steps where the run
        stopped at its plateau), batch_size, optimizer, autocast (the dtype name or "none"),
        final_training_loss, <kind>_train_accuracy (on train_accuracy_texts of the training texts:
        training_accuracy_texts), <kind>_test_accuracy (NaN without test texts),
        validation_texts, validation_accuracy (the last measured), chance_accuracy (the majority class's
        share of the training texts), learned (the validation accuracy, or the training accuracy without
        validation texts, beats chance: learning_curves.beats_chance), plateau_reached,
        last_epoch_gain, plateau_standard_error, steps_to_plateau (learning_curves.plateau),
        training_seconds;
        the training log: model, dataset, step, loss, validation_accuracy (NaN between evaluations)).
    """
    checkpoint = run_checkpoint_path(kind, tokenized_texts, language_model_card, settings, model, dataset)
    started = time.perf_counter()
    train, validation = validation_split(
        tokenized_texts[tokenized_texts["split"] == "train"],
        float(settings.get("validation_fraction", 0.0)),
        settings["seed"],
    )
    test = tokenized_texts[tokenized_texts["split"] == "test"]
    device = next(classifier.parameters()).device
    dtype = autocast_dtype(settings.get("autocast", "none"), device)
    logger.info(
        "%s training on %s / %s: %d texts, %d for validation, autocast %s, %s attention on %s",
        kind, model, dataset, len(train), len(validation), dtype or "none",
        getattr(classifier.backbone.config, "_attn_implementation", "the model's"), device,
    )  # fmt: skip
    history = train_classifier(
        classifier, train, settings, pad_token_id, checkpoint, description=f"{kind} training", validation=validation
    )
    batch_size = settings["batch_size"]
    curve = history.plateau(int(settings.get("evaluations_per_epoch", 1)), max(len(validation), 1))
    scored_train = training_accuracy_texts(train, settings.get("train_accuracy_texts"), settings["seed"])
    train_accuracy = accuracy(classifier, scored_train, batch_size, pad_token_id, dtype)
    validation_accuracy = history.validation_accuracies[-1] if history.validation_accuracies else float("nan")
    chance = majority_rate(train["label_id"].to_numpy())
    judged, judged_accuracy = (validation, validation_accuracy) if len(validation) else (scored_train, train_accuracy)
    metrics = {
        "model": model,
        "dataset": dataset,
        "steps": len(history.losses),
        "planned_steps": training_steps(settings, len(train)),
        "batch_size": int(batch_size),
        "optimizer": settings.get("optimizer", "adafactor"),
        "autocast": str(dtype).removeprefix("torch.") if dtype else "none",
        "final_training_loss": history.losses[-1],
        f"{kind}_train_accuracy": train_accuracy,
        "train_accuracy_texts": len(scored_train),
        f"{kind}_test_accuracy": accuracy(classifier, test, batch_size, pad_token_id, dtype) if len(test) else float("nan"),
        "validation_texts": len(validation),
        "validation_accuracy": validation_accuracy,
        "chance_accuracy": chance,
        "learned": beats_chance(judged_accuracy, chance, len(judged)),
        "plateau_reached": curve.reached,
        "last_epoch_gain": curve.last_epoch_gain,
        "plateau_standard_error": curve.standard_error,
        "steps_to_plateau": curve.step,
        "training_seconds": time.perf_counter() - started,
    }
    logger.info("%s on %s / %s: %s", kind, model, dataset, metrics)
    if len(validation) and not curve.reached:
        logger.warning(
            "%s on %s / %s: the validation accuracy has not levelled off (last epoch %+.3f against a standard error "
            "of %.3f): more steps or epochs may help",
            kind, model, dataset, curve.last_epoch_gain, curve.standard_error,
        )  # fmt: skip
    if not metrics["learned"]:
        logger.warning(
            "%s on %s / %s is not clearly above chance: its %s accuracy, %.3f, is within two standard errors of always "
            "answering the majority class (%.3f); it diverged (a lower learning rate may help) or what it learned does "
            "not carry to new texts",
            kind, model, dataset, "validation" if len(validation) else "training", judged_accuracy, chance,
        )  # fmt: skip
    checkpoint.unlink(missing_ok=True)
    log = pd.DataFrame(
        {"model": model, "dataset": dataset, "step": np.arange(1, len(history.losses) + 1), "loss": history.losses}
    )
    measured = pd.Series(history.validation_accuracies, index=np.asarray(history.validation_steps, dtype=np.int64))
    log["validation_accuracy"] = log["step"].map(measured).astype(float)
    return pd.DataFrame([metrics]), log

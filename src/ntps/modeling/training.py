"""The training loop shared by LoRA and training from scratch: Adafactor with a cosine schedule and
warm-up (the paper's settings), seeded batches, periodic checkpoints a killed run resumes from, and
accuracy on each split."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import transformers
from tqdm.auto import tqdm
from transformers.optimization import Adafactor

from ntps.core.errors import NtpsInputError
from ntps.modeling.checkpoints import resume_checkpoint, run_checkpoint_path, save_checkpoint
from ntps.modeling.classifiers import MeanPooledClassifier
from ntps.modeling.hidden_states import padded_batches

logger = logging.getLogger(__name__)


def adafactor_with_cosine_schedule(
    classifier: torch.nn.Module, settings: dict[str, Any], steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The paper's optimizer (Adafactor, fixed learning rate, clipped updates) and a cosine
    schedule whose first warmup_fraction of the steps warm up linearly."""
    optimizer = Adafactor(
        [parameter for parameter in classifier.parameters() if parameter.requires_grad],
        lr=settings["learning_rate"],
        eps=tuple(settings["eps"]),
        clip_threshold=settings["clip_threshold"],
        decay_rate=-settings["decay_rate"],  # transformers' convention: the exponent of the decay is negative
        weight_decay=settings["weight_decay"],
        relative_step=False,
        scale_parameter=False,
        warmup_init=False,
    )
    warmup = int(round(settings["warmup_fraction"] * steps))
    return optimizer, transformers.get_cosine_schedule_with_warmup(optimizer, warmup, steps)


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
) -> list[float]:
    """Trains for settings["steps"] steps of settings["batch_size"] texts, checkpointing the
    trainable parameters, optimizer, schedule, random state and losses every checkpoint_every
    steps and resuming from checkpoint_path when it exists.

    Args:
        train: tokenized training texts (input_ids, n_tokens, label_id).
        stop_after: stop after this many steps in this call (to test resuming); None runs to the end.
        description: the progress bar's label.

    Returns:
        the training loss of every step so far, those of an interrupted earlier call included.
    """
    steps, seed = int(settings["steps"]), int(settings["seed"])
    if steps < 1:
        raise NtpsInputError(f"training needs at least one step, got steps={steps}")
    if len(train) < settings["batch_size"]:
        raise NtpsInputError(f"{len(train)} training texts are fewer than one batch of {settings['batch_size']}")
    device = next(classifier.parameters()).device
    optimizer, schedule = adafactor_with_cosine_schedule(classifier, settings, steps)
    checkpoint_path = Path(checkpoint_path)
    step, losses = 0, []
    torch.manual_seed(seed)
    resumed = resume_checkpoint(checkpoint_path, classifier, optimizer, schedule)
    if resumed is not None:
        step, losses = resumed
        logger.info("resuming %s from step %d of %d (%s)", description, step, steps, checkpoint_path)
    classifier.train()
    last = steps if stop_after is None else min(steps, step + stop_after)
    for step in tqdm(range(step, last), initial=step, total=steps, desc=description, unit="step"):
        input_ids, attention_mask, label_ids = _training_batches(train, settings["batch_size"], pad_token_id, seed, step)
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
        losses.append(loss_value)
        if (step + 1) % settings["checkpoint_every"] == 0 or step + 1 == last:
            save_checkpoint(checkpoint_path, classifier, optimizer, schedule, step + 1, losses)
    classifier.eval()
    return losses


def accuracy(classifier: MeanPooledClassifier, texts: pd.DataFrame, batch_size: int, pad_token_id: int) -> float:
    """Share of texts whose highest logit is their label."""
    device = next(classifier.parameters()).device
    correct = 0
    with torch.inference_mode():
        for _, input_ids, attention_mask, label_ids in padded_batches(texts, batch_size, pad_token_id):
            predicted = classifier(input_ids.to(device), attention_mask.to(device)).argmax(dim=-1).cpu()
            correct += int((predicted == label_ids).sum())
    return correct / len(texts)


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
    """Trains on the texts of split "train" (train_classifier, resuming from and checkpointing to
    checkpoints.run_checkpoint_path) and scores both splits; the checkpoint is removed at the end, as the
    caller's versioned outputs then hold the result.

    Args:
        kind: names the run ("lora", "scratch"): its checkpoint, progress bar and metric columns.

    Returns:
        (one row: model, dataset, steps, batch_size, final_training_loss,
        <kind>_train_accuracy, <kind>_test_accuracy (NaN without test texts), training_seconds;
        the training log: model, dataset, step, loss).
    """
    checkpoint = run_checkpoint_path(kind, tokenized_texts, language_model_card, settings, model, dataset)
    started = time.perf_counter()
    train = tokenized_texts[tokenized_texts["split"] == "train"]
    test = tokenized_texts[tokenized_texts["split"] == "test"]
    losses = train_classifier(classifier, train, settings, pad_token_id, checkpoint, description=f"{kind} training")
    batch_size = settings["batch_size"]
    metrics = {
        "model": model,
        "dataset": dataset,
        "steps": int(settings["steps"]),
        "batch_size": int(batch_size),
        "final_training_loss": losses[-1],
        f"{kind}_train_accuracy": accuracy(classifier, train, batch_size, pad_token_id),
        f"{kind}_test_accuracy": accuracy(classifier, test, batch_size, pad_token_id) if len(test) else float("nan"),
        "training_seconds": time.perf_counter() - started,
    }
    logger.info("%s on %s / %s: %s", kind, model, dataset, metrics)
    checkpoint.unlink(missing_ok=True)
    log = pd.DataFrame({"model": model, "dataset": dataset, "step": np.arange(1, len(losses) + 1), "loss": losses})
    return pd.DataFrame([metrics]), log

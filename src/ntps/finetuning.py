"""LoRA fine-tuning of a causal LM backbone with a linear head on its mean-pooled final block
(paper, Section 4.2): peft adapters on the attention query/key/value projections, Adafactor,
cosine schedule with warm-up, periodic checkpoints that a killed run resumes from."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import peft
import torch
import transformers
from tqdm.auto import tqdm
from transformers.optimization import Adafactor

from ntps.core.errors import NtpsInputError
from ntps.extraction import padded_batches

logger = logging.getLogger(__name__)

# Projection names per architecture family: fused (GPT-2's c_attn, OpenELM's qkv_proj) or separate.
QKV_MODULE_NAMES = (("c_attn",), ("qkv_proj",), ("q_proj", "k_proj", "v_proj"))


def attention_projection_modules(model: torch.nn.Module) -> list[str]:
    """The attention query/key/value projection module names LoRA adapts in this model.

    Raises:
        NtpsInputError: the architecture has none of GPT-2's c_attn, OpenELM's qkv_proj or
            Llama/Qwen's q_proj/k_proj/v_proj.
    """
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for names in QKV_MODULE_NAMES:
        if set(names) <= leaf_names:
            return list(names)
    linear = sorted(
        {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    )
    raise NtpsInputError(
        f"cannot find the attention query/key/value projections of {type(model).__name__}: expected c_attn, "
        f"qkv_proj or q_proj/k_proj/v_proj; its linear layers are named {linear}"
    )


class MeanPooledClassifier(torch.nn.Module):
    """backbone -> mean of the final hidden state over real tokens -> linear head."""

    def __init__(self, backbone: torch.nn.Module, hidden_size: int, n_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(hidden_size, n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and mask -> (B, n_classes) logits."""
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return self.head((states * mask).sum(dim=1) / mask.sum(dim=1))


def lora_classifier(backbone: torch.nn.Module, n_classes: int, settings: dict[str, Any], seed: int) -> MeanPooledClassifier:
    """The backbone frozen, LoRA adapters on its QKV projections and a fresh head trainable."""
    torch.manual_seed(seed)
    config = peft.LoraConfig(
        r=settings["rank"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        bias="none",
        target_modules=attention_projection_modules(backbone),
    )
    adapted = peft.get_peft_model(backbone, config)
    return MeanPooledClassifier(adapted, backbone.config.hidden_size, n_classes)


def trainable_state(classifier: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training changes (adapters and head), detached copies on the CPU."""
    return {
        name: parameter.detach().cpu().clone()
        for name, parameter in classifier.named_parameters()
        if parameter.requires_grad
    }


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
) -> list[float]:
    """Trains for settings["steps"] steps of settings["batch_size"] texts, checkpointing the
    trainable parameters, optimizer, schedule and random state every checkpoint_every steps and
    resuming from checkpoint_path when it exists.

    Args:
        train: tokenized training texts (input_ids, n_tokens, label_id).
        stop_after: stop after this many steps in this call (to test resuming); None runs to the end.

    Returns:
        the training loss of every step run in this call.
    """
    steps, seed = int(settings["steps"]), int(settings["seed"])
    if len(train) < settings["batch_size"]:
        raise NtpsInputError(f"{len(train)} training texts are fewer than one batch of {settings['batch_size']}")
    device = next(classifier.parameters()).device
    optimizer, schedule = adafactor_with_cosine_schedule(classifier, settings, steps)
    checkpoint_path = Path(checkpoint_path)
    step = 0
    torch.manual_seed(seed)
    if checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        classifier.load_state_dict(checkpoint["trainable"], strict=False)
        optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        torch.set_rng_state(checkpoint["torch_rng"])
        step = checkpoint["step"]
        logger.info("resuming LoRA training from step %d of %d (%s)", step, steps, checkpoint_path)
    classifier.train()
    losses = []
    last = steps if stop_after is None else min(steps, step + stop_after)
    for step in tqdm(range(step, last), initial=step, total=steps, desc="LoRA training", unit="step"):
        input_ids, attention_mask, label_ids = _training_batches(train, settings["batch_size"], pad_token_id, seed, step)
        logits = classifier(input_ids.to(device), attention_mask.to(device))
        loss = torch.nn.functional.cross_entropy(logits.float(), label_ids.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss))
        if (step + 1) % settings["checkpoint_every"] == 0 or step + 1 == last:
            _save_checkpoint(checkpoint_path, classifier, optimizer, schedule, step + 1)
    classifier.eval()
    return losses


def _save_checkpoint(path: Path, classifier, optimizer, schedule, step: int) -> None:
    """Written to a temporary file and renamed, so a run killed while saving keeps the last one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(
        {
            "trainable": trainable_state(classifier),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
        },
        temporary,
    )
    temporary.replace(path)


def accuracy(classifier: MeanPooledClassifier, texts: pd.DataFrame, batch_size: int, pad_token_id: int) -> float:
    """Share of texts whose highest logit is their label."""
    device = next(classifier.parameters()).device
    correct = 0
    with torch.inference_mode():
        for _, input_ids, attention_mask, label_ids in padded_batches(texts, batch_size, pad_token_id):
            predicted = classifier(input_ids.to(device), attention_mask.to(device)).argmax(dim=-1).cpu()
            correct += int((predicted == label_ids).sum())
    return correct / len(texts)

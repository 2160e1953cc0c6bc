"""Fine-tuning of a causal LM backbone with a linear head on its mean-pooled final block: LoRA
(paper, Section 4.2: peft adapters on the attention query/key/value projections) and training from
scratch (paper, Table 1), both with Adafactor, a cosine schedule with warm-up, and periodic
checkpoints that a killed run resumes from."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import peft
import safetensors.numpy
import torch
import transformers
from tqdm.auto import tqdm
from transformers.optimization import Adafactor

from ntps.core.errors import NtpsInputError
from ntps.extraction import padded_batches
from ntps.sources.language_models import hidden_size

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
    """backbone -> mean of the final hidden state over real tokens -> linear head.

    The head is float32 on the backbone's device whatever the backbone's precision, and the
    pooled state is cast to it.
    """

    def __init__(self, backbone: torch.nn.Module, hidden_size: int, n_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(hidden_size, n_classes, device=next(backbone.parameters()).device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and mask -> (B, n_classes) float32 logits."""
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        return self.head((states.float() * mask).sum(dim=1) / mask.sum(dim=1))


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
    return MeanPooledClassifier(adapted, hidden_size(backbone.config), n_classes)


def scratch_classifier(
    config: transformers.PretrainedConfig,
    n_classes: int,
    seed: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    trust_remote_code: bool = False,
) -> MeanPooledClassifier:
    """The same architecture as a pretrained backbone, randomly initialized, every parameter and a
    fresh head trainable (the paper's full training from scratch)."""
    torch.manual_seed(seed)
    backbone = transformers.AutoModel.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    return MeanPooledClassifier(backbone.to(device), hidden_size(config), n_classes)


ADAPTER_CONFIG_FILE = "adapter_config.json"  # the file names peft.PeftModel.from_pretrained reads
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
HEAD_WEIGHTS_FILE = "classification_head.safetensors"


@dataclass
class LoraAdapter:
    """A trained LoRA adapter and its classification head, stored as peft stores adapters.

    Attributes:
        peft_config: the LoraConfig as a JSON-able dict (peft's adapter_config.json).
        adapter_weights: peft's adapter state dict, e.g.
            "base_model.model.layers.0.self_attn.q_proj.lora_A.weight" -> (rank, d_in) float32.
        head_weights: "weight" (n_classes, d) and "bias" (n_classes,) float32.
        location: the folder it was loaded from, which
            peft.PeftModel.from_pretrained(backbone, location) applies; None before it is saved.
    """

    peft_config: dict[str, Any]
    adapter_weights: dict[str, np.ndarray]
    head_weights: dict[str, np.ndarray]
    location: str | None = None

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ADAPTER_CONFIG_FILE).write_text(json.dumps(self.peft_config, indent=2, sort_keys=True))
        safetensors.numpy.save_file(self.adapter_weights, folder / ADAPTER_WEIGHTS_FILE)
        safetensors.numpy.save_file(self.head_weights, folder / HEAD_WEIGHTS_FILE)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> LoraAdapter:
        folder = Path(folder)
        return cls(
            json.loads((folder / ADAPTER_CONFIG_FILE).read_text()),
            safetensors.numpy.load_file(folder / ADAPTER_WEIGHTS_FILE),
            safetensors.numpy.load_file(folder / HEAD_WEIGHTS_FILE),
            location=os.fspath(folder),
        )


def lora_adapter(classifier: MeanPooledClassifier) -> LoraAdapter:
    """The adapter and head of a classifier made by lora_classifier, as float32 arrays."""
    config = classifier.backbone.peft_config["default"].to_dict()
    # As peft's own save_pretrained: sets (target_modules) become lists for JSON.
    config = {key: sorted(value) if isinstance(value, set) else value for key, value in config.items()}
    weights = peft.get_peft_model_state_dict(classifier.backbone)
    return LoraAdapter(
        json.loads(json.dumps(config, default=str)),
        {name: tensor.detach().float().cpu().numpy() for name, tensor in weights.items()},
        {name: tensor.detach().float().cpu().numpy() for name, tensor in classifier.head.state_dict().items()},
    )


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
    if checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        classifier.load_state_dict(checkpoint["trainable"], strict=False)
        optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if checkpoint["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        step, losses = checkpoint["step"], checkpoint["losses"]
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
            _save_checkpoint(checkpoint_path, classifier, optimizer, schedule, step + 1, losses)
    classifier.eval()
    return losses


def _save_checkpoint(path: Path, classifier, optimizer, schedule, step: int, losses: list[float]) -> None:
    """Written to a temporary file and renamed, so a run killed while saving keeps the last one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(
        {
            "trainable": trainable_state(classifier),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            # Dropout on a GPU draws from CUDA's generators.
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "step": step,
            "losses": losses,
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


def _classifier_checkpoint(
    kind: str,
    tokenized_texts: pd.DataFrame,
    language_model_card: dict[str, Any],
    settings: dict[str, Any],
    model: str,
    dataset: str,
) -> Path:
    """Where a training run of this kind checkpoints: under settings["checkpoint_dir"], named by
    a hash of the settings, the model and the training texts, so a killed run resumes and a
    changed one starts over."""
    train = tokenized_texts[tokenized_texts["split"] == "train"]
    identity = json.dumps(
        [kind, settings, language_model_card["location"], train["input_ids"].tolist()], sort_keys=True, default=str
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return Path(settings["checkpoint_dir"]) / model / dataset / f"{kind}-{digest}.pt"


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
    _classifier_checkpoint) and scores both splits; the checkpoint is removed at the end, as the
    caller's versioned outputs then hold the result.

    Args:
        kind: names the run ("lora", "scratch"): its checkpoint, progress bar and metric columns.

    Returns:
        (one row: model, dataset, steps, batch_size, final_training_loss,
        <kind>_train_accuracy, <kind>_test_accuracy (NaN without test texts), training_seconds;
        the training log: model, dataset, step, loss).
    """
    checkpoint_path = _classifier_checkpoint(kind, tokenized_texts, language_model_card, settings, model, dataset)
    started = time.perf_counter()
    train = tokenized_texts[tokenized_texts["split"] == "train"]
    test = tokenized_texts[tokenized_texts["split"] == "test"]
    losses = train_classifier(classifier, train, settings, pad_token_id, checkpoint_path, description=f"{kind} training")
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
    checkpoint_path.unlink(missing_ok=True)
    log = pd.DataFrame({"model": model, "dataset": dataset, "step": np.arange(1, len(losses) + 1), "loss": losses})
    return pd.DataFrame([metrics]), log

"""The classifiers the paper fine-tunes: a causal LM backbone with a linear head on its mean-pooled
final block, with LoRA adapters on the attention query/key/value projections (paper, Section 4.2)
or trained from scratch (paper, Table 1)."""

from __future__ import annotations

import json
from typing import Any

import peft
import torch
import transformers

from ntps.core.errors import NtpsInputError
from ntps.modeling.adapter_format import LoraAdapter
from ntps.sources.language_models import hidden_size

# Projection names per architecture family: fused (GPT-2's c_attn, OpenELM's and Phi-3's qkv_proj,
# GPT-NeoX's and Falcon's query_key_value) or separate (Llama, Qwen, Mistral, Gemma, OLMo).
QKV_MODULE_NAMES = (("c_attn",), ("qkv_proj",), ("query_key_value",), ("q_proj", "k_proj", "v_proj"))


def attention_projection_modules(model: torch.nn.Module) -> list[str]:
    """The attention query/key/value projection module names LoRA adapts in this model.

    Raises:
        NtpsInputError: the architecture has none of the names of QKV_MODULE_NAMES.
    """
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for names in QKV_MODULE_NAMES:
        if set(names) <= leaf_names:
            return list(names)
    linear = sorted(
        {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    )
    raise NtpsInputError(
        f"cannot find the attention query/key/value projections of {type(model).__name__}: expected one of "
        f"{['/'.join(names) for names in QKV_MODULE_NAMES]}; its linear layers are named {linear}"
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
    attention: str = "sdpa",
) -> MeanPooledClassifier:
    """The same architecture as a pretrained backbone, randomly initialized, every parameter and a
    fresh head trainable (the paper's full training from scratch), with transformers' attention
    implementation `attention`."""
    torch.manual_seed(seed)
    backbone = transformers.AutoModel.from_config(
        config, dtype=dtype, attn_implementation=attention, trust_remote_code=trust_remote_code
    )
    return MeanPooledClassifier(backbone.to(device), hidden_size(config), n_classes)


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

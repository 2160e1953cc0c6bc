"""ntps.modeling.classifiers: which modules LoRA adapts and what LoRA and training from scratch train."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from ntps.core.errors import NtpsInputError
from ntps.modeling.classifiers import (
    attention_projection_modules,
    lora_classifier,
    scratch_classifier,
    trainable_state,
)
from ntps.modeling.training import accuracy, train_classifier
from tests.modeling.tiny_models import SETTINGS, FusedQkvAttention, tiny_gpt2, tiny_llama, tokenized_texts


def test_qkv_modules_are_found_per_architecture_and_unknown_ones_are_named():
    assert attention_projection_modules(tiny_gpt2()) == ["c_attn"]
    assert attention_projection_modules(tiny_llama()) == ["q_proj", "k_proj", "v_proj"]
    assert attention_projection_modules(torch.nn.ModuleDict({"attention": FusedQkvAttention()})) == ["qkv_proj"]
    neox = transformers.GPTNeoXConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    assert attention_projection_modules(transformers.AutoModel.from_config(neox)) == ["query_key_value"]
    falcon = transformers.FalconConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2)
    assert attention_projection_modules(transformers.AutoModel.from_config(falcon)) == ["query_key_value"]
    with pytest.raises(NtpsInputError, match=r"linear layers are named \['dense', 'proj'\]"):
        attention_projection_modules(torch.nn.ModuleDict({"dense": torch.nn.Linear(4, 4), "proj": torch.nn.Linear(4, 4)}))


def test_lora_trains_only_the_qkv_adapters_and_the_head_and_leaves_the_base_unchanged(tmp_path):
    classifier = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    trainable = trainable_state(classifier)
    # rank x (in + out) per q, k, v projection (16 -> 16) in each of 2 blocks, plus a 16 -> 3 head.
    assert sum(tensor.numel() for tensor in trainable.values()) == 4 * (16 + 16) * 3 * 2 + 16 * 3 + 3
    assert all(
        ("lora_" in name and any(p in name for p in ("q_proj", "k_proj", "v_proj"))) or name.startswith("head.")
        for name in trainable
    )
    frozen_before = {name: value.clone() for name, value in classifier.state_dict().items() if name not in trainable}
    losses = train_classifier(
        classifier, tokenized_texts(16, seed=1), SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "c.pt"
    ).losses
    assert len(losses) == 6 and all(np.isfinite(losses))
    after = classifier.state_dict()
    assert all(torch.equal(after[name], value) for name, value in frozen_before.items())
    assert any(not torch.equal(trainable_state(classifier)[name], value) for name, value in trainable.items())
    assert 0 <= accuracy(classifier, tokenized_texts(8, seed=2), batch_size=4, pad_token_id=0) <= 1


def test_training_from_scratch_trains_every_parameter_of_a_randomly_initialized_copy(tmp_path):
    pretrained = tiny_llama()
    classifier = scratch_classifier(pretrained.config, n_classes=3, seed=1)
    assert all(parameter.requires_grad for parameter in classifier.parameters())
    assert not torch.equal(classifier.backbone.embed_tokens.weight, pretrained.embed_tokens.weight), "random weights"
    assert sum(p.numel() for p in classifier.backbone.parameters()) == sum(p.numel() for p in pretrained.parameters())
    before = {name: value.clone() for name, value in classifier.state_dict().items()}
    train_classifier(
        classifier, tokenized_texts(16, seed=4), SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "s.pt", description="x"
    )
    after = classifier.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert "backbone.layers.0.mlp.up_proj.weight" in changed and "head.weight" in changed

"""LoRA fine-tuning: which modules it adapts, what it trains, and resuming from a checkpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import transformers
import yaml

from ntps.core.errors import NtpsInputError
from ntps.finetuning import (
    accuracy,
    attention_projection_modules,
    lora_classifier,
    train_classifier,
    trainable_state,
)
from tests.conftest import four_layer_run, kedro_run
from tests.test_sources_and_extraction import tiny_llama

SETTINGS = {
    "rank": 4,
    "alpha": 4,
    "dropout": 0.05,
    "learning_rate": 1.0e-2,
    "eps": [1.0e-30, 1.0e-3],
    "clip_threshold": 1.0,
    "decay_rate": 0.8,
    "weight_decay": 1.0e-5,
    "warmup_fraction": 0.05,
    "steps": 6,
    "batch_size": 4,
    "checkpoint_every": 2,
    "seed": 0,
}


def tiny_gpt2():
    config = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=32)
    return transformers.AutoModel.from_config(config)


class FusedQkvAttention(torch.nn.Module):
    """Stands in for OpenELM's attention, whose query/key/value projection is one qkv_proj."""

    def __init__(self):
        super().__init__()
        self.qkv_proj = torch.nn.Linear(8, 24)
        self.out_proj = torch.nn.Linear(8, 8)


def test_qkv_modules_are_found_per_architecture_and_unknown_ones_are_named():
    assert attention_projection_modules(tiny_gpt2()) == ["c_attn"]
    assert attention_projection_modules(tiny_llama()) == ["q_proj", "k_proj", "v_proj"]
    assert attention_projection_modules(torch.nn.ModuleDict({"attention": FusedQkvAttention()})) == ["qkv_proj"]
    with pytest.raises(NtpsInputError, match=r"linear layers are named \['dense', 'proj'\]"):
        attention_projection_modules(torch.nn.ModuleDict({"dense": torch.nn.Linear(4, 4), "proj": torch.nn.Linear(4, 4)}))


def tokenized_texts(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, size=n)
    return pd.DataFrame(
        {
            "input_ids": [rng.integers(1, 50, size=length).tolist() for length in lengths],
            "n_tokens": lengths,
            "label_id": rng.integers(0, 3, size=n),
        }
    )


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
    )
    assert len(losses) == 6 and all(np.isfinite(losses))
    after = classifier.state_dict()
    assert all(torch.equal(after[name], value) for name, value in frozen_before.items())
    assert any(not torch.equal(trainable_state(classifier)[name], value) for name, value in trainable.items())
    assert 0 <= accuracy(classifier, tokenized_texts(8, seed=2), batch_size=4, pad_token_id=0) <= 1


def test_a_resumed_run_ends_with_the_adapter_of_an_uninterrupted_one(tmp_path):
    texts = tokenized_texts(16, seed=3)
    uninterrupted = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    train_classifier(uninterrupted, texts, SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "straight.pt")

    killed = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    assert (
        len(train_classifier(killed, texts, SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "resumed.pt", stop_after=3))
        == 3
    )
    restarted = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)  # a new process, from the checkpoint
    assert len(train_classifier(restarted, texts, SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "resumed.pt")) == 3

    expected, resumed = trainable_state(uninterrupted), trainable_state(restarted)
    assert expected.keys() == resumed.keys()
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=0)


@pytest.mark.end_to_end
def test_lora_pipeline_saves_a_versioned_adapter_and_its_accuracy(project, model_cache, four_layer_model):
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(four_layer_run(four_layer_model, ["election_tweets"])))
    assert kedro_run(project, model_cache).returncode == 0
    lora = {"lora.steps": 4, "lora.batch_size": 4, "lora.checkpoint_every": 2, "lora.rank": 4, "lora.alpha": 4}
    result = kedro_run(project, model_cache, lora, pipeline="lora")
    assert result.returncode == 0, result.stderr[-4000:]
    (adapter_path,) = (project / "data/06_models/smollm2_4_layers/election_tweets/lora_adapter.npz").glob("*/*.npz")
    with np.load(adapter_path) as adapter:
        names = list(adapter.files)
        assert {"head.weight", "head.bias"} <= set(names)
        # rank 4 adapters on q, k, v (576 -> 576 for q, 576 -> 192 for k and v) in each of 4 blocks
        assert sum(adapter[name].size for name in names if "lora_" in name) == 4 * 4 * ((576 + 576) + 2 * (576 + 192))
    (metrics_path,) = (project / "data/07_model_output/smollm2_4_layers/election_tweets/lora_metrics.parquet").glob("*/*")
    metrics = pd.read_parquet(metrics_path)
    assert metrics["lora_test_accuracy"].between(0, 1).all() and (metrics["steps"] == 4).all()
    assert not list((project / "data/06_models/lora_checkpoints").rglob("*.pt")), (
        "the checkpoint is removed once training ends"
    )

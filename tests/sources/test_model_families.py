"""Every common decoder-only family by Hugging Face id, read offline from a hub cache laid out as the hub
client lays it out (tests/hub_cache.py): the forward pass and its statistics against a text-by-text
reference without padding, the pooled features, NTPS and the layer probes, and LoRA (targets found,
trained, merged, NTPS after it)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import transformers
from huggingface_hub import constants

from ntps.core.errors import NtpsInputError
from ntps.core.ntps import score_tables
from ntps.core.statistics import STORED_NAMES, StatisticsAccumulator
from ntps.core.subspaces import layer_subspaces
from ntps.modeling.classifiers import attention_projection_modules, lora_adapter, lora_classifier
from ntps.modeling.hidden_states import extract_hidden_states, tokenize_labeled_texts
from ntps.modeling.probing import layer_probe_table
from ntps.modeling.training import train_classifier
from ntps.sources.language_models import (
    ModelNotAvailableError,
    load_backbone,
    load_tokenizer,
    model_card,
    resolve_model_location,
)
from tests.hub_cache import FAMILIES, hub_snapshot, save_family

TEXTS = [
    "the film is a quiet triumph",
    "a tedious mess",
    "warm, funny and wise",
    "nothing works here at all, not even the music",
    "I loved it",
    "dull",
    "an unexpected delight from start to finish",
    "the plot never holds together",
    "brilliant acting",
    "a waste of a good cast",
    "charming",
    "it drags on and on",
]
LAYER_SETTINGS = {"ridge_strengths": [1e-2, 1.0, 1e2], "interval_level": 0.95}
LOGISTIC = {"inverse_regularization": 1.0, "max_iterations": 200, "tolerance": 1e-3, "seed": 0}
LORA = {
    "rank": 4, "alpha": 4, "dropout": 0.0, "optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 0.0,
    "warmup_fraction": 0.0, "steps": 2, "batch_size": 4, "checkpoint_every": 2, "seed": 0, "autocast": "none",
}  # fmt: skip


@pytest.fixture(scope="module")
def hub(tmp_path_factory, embedded_model):
    """A hub cache (HF_HOME/hub) holding one tiny model per family, each with a real tokenizer."""
    root = tmp_path_factory.mktemp("hf_home") / "hub"
    location, _ = embedded_model
    return root, {family: save_family(root, family, location) for family in FAMILIES}


@pytest.fixture
def offline_hub(hub, monkeypatch):
    root, ids = hub
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    return ids


def labeled_texts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": TEXTS,
            "label": ["pos", "neg"] * 6,
            "label_id": [1, 0] * 6,
            "split": ["train"] * 8 + ["test"] * 4,
        }
    )


@pytest.mark.end_to_end
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_family_by_hub_id_runs_from_the_cache_through_statistics_ntps_probes_and_lora(offline_hub, family, tmp_path):
    hf_id = offline_hub[family]
    spec = {"source": "huggingface", "hf_id": hf_id}
    location = resolve_model_location(spec, str(tmp_path))
    card = model_card(location, spec)
    assert card["n_hidden_states"] == 3 and card["hidden_size"] == 32
    tokenizer = load_tokenizer(location, spec)
    assert tokenizer.pad_token_id is not None  # a tokenizer without one pads with EOS
    tokenized = tokenize_labeled_texts(tokenizer, labeled_texts(), max_tokens=32)
    if FAMILIES[family][2] == "bos":
        assert all(
            ids[0] == tokenizer.convert_tokens_to_ids(tokenizer.bos_token or tokenizer.eos_token)
            for ids in tokenized["input_ids"]
        )

    # The padded, batched statistics equal a text-by-text reference without padding, in float64.
    model64 = transformers.AutoModel.from_pretrained(location, dtype=torch.float64).eval()
    statistics, pooled = extract_hidden_states(
        model64, tokenized, 2, batch_size=5, pad_token_id=tokenizer.pad_token_id, statistics_split="train",
        pooled_hidden_states="all",
    )  # fmt: skip
    reference = StatisticsAccumulator(3, 32, 2)
    with torch.inference_mode():
        for ids, label, split in zip(tokenized["input_ids"], tokenized["label_id"], tokenized["split"]):
            states = model64(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            if split == "train":
                reference.update(states, torch.ones(1, len(ids)), torch.tensor([label]))
    expected = reference.result()
    for name in STORED_NAMES:
        wanted = getattr(expected, name)
        np.testing.assert_allclose(getattr(statistics, name), wanted, rtol=0, atol=1e-10 * max(np.abs(wanted).max(), 1))

    # NTPS and the layer probes on a float32 backbone as the pipeline loads it.
    backbone = load_backbone(location, spec, "float32", "cpu")
    statistics32, pooled32 = extract_hidden_states(
        backbone, tokenized, 2, batch_size=5, pad_token_id=tokenizer.pad_token_id, statistics_split="train",
        pooled_hidden_states="all",
    )  # fmt: skip
    scores = score_tables(statistics32, layer_subspaces(statistics32, ridge=1e-6), 1e-6, [0.25, 0.5], released_code=False)
    table = scores[0]
    assert table["ntps"].between(0, 1 + 1e-9).all() and table["ntps"].notna().all()
    probes = layer_probe_table(pooled32, LAYER_SETTINGS, LOGISTIC)
    assert probes["hidden_state"].tolist() == [0, 1, 2] and probes["loo_accuracy"].between(0, 1).all()

    # LoRA: its targets are found, it trains, and merged into the weights it moves the blocks only.
    fresh = transformers.AutoModel.from_pretrained(location)
    assert attention_projection_modules(fresh)
    classifier = lora_classifier(fresh, 2, LORA, seed=0)
    train = tokenized[tokenized["split"] == "train"]
    history = train_classifier(classifier, train, LORA, tokenizer.pad_token_id, tmp_path / "lora.pt")
    assert len(history.losses) == 2 and np.isfinite(history.losses).all()
    adapter = lora_adapter(classifier)
    with torch.no_grad():  # a trained adapter's B starts at zero: make it move the weights visibly
        adapter.adapter_weights = {name: value + 0.05 for name, value in adapter.adapter_weights.items()}
    adapter.save(tmp_path / "adapter")
    adapted = load_backbone(location, spec, "float32", "cpu", adapter=str(tmp_path / "adapter"))
    after, _ = extract_hidden_states(
        adapted, tokenized, 2, batch_size=5, pad_token_id=tokenizer.pad_token_id, statistics_split="train"
    )
    np.testing.assert_allclose(after.summed("cov0", 0), statistics32.summed("cov0", 0), rtol=1e-10, atol=0)
    assert not np.allclose(after.summed("cov0", -1), statistics32.summed("cov0", -1), rtol=1e-4)
    after_lora = score_tables(after, layer_subspaces(after, ridge=1e-6), 1e-6, [0.25, 0.5], released_code=False)[0]
    assert after_lora["ntps"].between(0, 1 + 1e-9).all() and len(after_lora) == len(table)


CUSTOM_CONFIGURATION = """
from transformers import LlamaConfig


class TinyCustomConfig(LlamaConfig):
    model_type = "tiny_custom"
"""
CUSTOM_MODELING = """
from transformers import LlamaForCausalLM, LlamaModel

from .configuration_tiny import TinyCustomConfig


class TinyCustomModel(LlamaModel):
    config_class = TinyCustomConfig


class TinyCustomForCausalLM(LlamaForCausalLM):
    config_class = TinyCustomConfig
"""


def save_remote_code_model(hub, repo_id: str, tokenizer_location: str) -> None:
    """A Llama under a model type transformers does not know, whose code ships in the snapshot."""
    snapshot = hub_snapshot(hub, repo_id)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_location)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    saved = json.loads((snapshot / "config.json").read_text())
    saved["model_type"] = "tiny_custom"
    saved["auto_map"] = {
        "AutoConfig": "configuration_tiny.TinyCustomConfig",
        "AutoModel": "modeling_tiny.TinyCustomModel",
        "AutoModelForCausalLM": "modeling_tiny.TinyCustomForCausalLM",
    }
    (snapshot / "config.json").write_text(json.dumps(saved))
    (snapshot / "configuration_tiny.py").write_text(CUSTOM_CONFIGURATION)
    (snapshot / "modeling_tiny.py").write_text(CUSTOM_MODELING)


@pytest.mark.end_to_end
def test_a_trust_remote_code_model_runs_from_its_cached_code_and_missing_code_says_what_to_fetch(
    hub, monkeypatch, embedded_model, tmp_path
):
    root, _ = hub
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    save_remote_code_model(root, "tiny-random/remote-code", embedded_model[0])
    spec = {"source": "huggingface", "hf_id": "tiny-random/remote-code", "trust_remote_code": True}
    location = resolve_model_location(spec, str(tmp_path))
    assert model_card(location, spec)["n_hidden_states"] == 3
    tokenizer = load_tokenizer(location, spec)
    tokenized = tokenize_labeled_texts(tokenizer, labeled_texts(), max_tokens=32)
    statistics, _ = extract_hidden_states(
        load_backbone(location, spec, "float32", "cpu"), tokenized, 2, 4, tokenizer.pad_token_id
    )
    assert np.isfinite(statistics.cov0_upper).all()

    save_remote_code_model(root, "tiny-random/remote-code-without-model", embedded_model[0])
    (hub_snapshot(root, "tiny-random/remote-code-without-model") / "modeling_tiny.py").unlink()
    spec = {**spec, "hf_id": "tiny-random/remote-code-without-model"}
    location = resolve_model_location(spec, str(tmp_path))
    with pytest.raises(
        ModelNotAvailableError,
        match=r"(?s)could not be loaded.*modelling code.*hf download tiny-random/remote-code-without-model",
    ):
        load_backbone(location, spec, "float32", "cpu")


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        (
            transformers.BertConfig(
                vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
            ),
            "bert",
        ),
        (transformers.T5Config(vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2), "t5"),
    ],
)
def test_a_model_that_is_not_a_causal_lm_is_refused_by_name(hub, monkeypatch, tmp_path, config, kind):
    root, _ = hub
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    config.save_pretrained(hub_snapshot(root, f"tiny-random/{kind}"))
    spec = {"source": "huggingface", "hf_id": f"tiny-random/{kind}"}
    location = resolve_model_location(spec, str(tmp_path))
    with pytest.raises(NtpsInputError, match=rf"'tiny-random/{kind}' is a {kind} model .*not a causal \(decoder-only\)"):
        model_card(location, spec)

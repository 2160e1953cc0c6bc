"""ntps.modeling.adapter_format: the stored adapter applied to the backbone for the NTPS stages."""

from __future__ import annotations

import numpy as np
import torch
from kedro.io.core import Version

from ntps.io import LoraAdapterDataset
from ntps.modeling.classifiers import (
    lora_adapter,
    lora_classifier,
)
from ntps.modeling.training import train_classifier
from ntps.sources.language_models import load_backbone
from tests.modeling.tiny_models import SETTINGS, tiny_llama, tokenized_texts


def test_the_stored_adapter_reproduces_the_trained_backbone_when_loaded_for_the_ntps_stages(tmp_path):
    """The versioned adapter folder, merged into a fresh backbone by load_backbone (what the NTPS
    stages do after LoRA), gives the hidden states of the trained classifier's own backbone."""
    base = tiny_llama()
    base_folder = tmp_path / "base"
    base.save_pretrained(base_folder)
    classifier = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    train_classifier(classifier, tokenized_texts(16, seed=5), SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "c.pt")
    adapter = lora_adapter(classifier)
    assert adapter.peft_config["r"] == 4 and sorted(adapter.peft_config["target_modules"]) == ["k_proj", "q_proj", "v_proj"]

    dataset = LoraAdapterDataset(filepath=str(tmp_path / "lora_adapter"), version=Version(None, "v1"))
    dataset.save(adapter)
    stored = LoraAdapterDataset(filepath=str(tmp_path / "lora_adapter"), version=Version(None, None)).load()
    assert stored.location.endswith("v1/lora_adapter")
    for name, value in adapter.adapter_weights.items():
        np.testing.assert_array_equal(stored.adapter_weights[name], value)
    np.testing.assert_array_equal(stored.head_weights["weight"], adapter.head_weights["weight"])

    merged = load_backbone(str(base_folder), {}, "float32", "cpu", adapter=stored.location)
    pretrained = load_backbone(str(base_folder), {}, "float32", "cpu")
    input_ids = torch.tensor([[3, 7, 11, 2, 9]])
    with torch.inference_mode():
        expected = classifier.backbone(input_ids=input_ids, use_cache=False).last_hidden_state
        got = merged(input_ids=input_ids, use_cache=False).last_hidden_state
        untouched = pretrained(input_ids=input_ids, use_cache=False).last_hidden_state
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (got - untouched).abs().max() > 1e-4, "the adapter changes the hidden states"

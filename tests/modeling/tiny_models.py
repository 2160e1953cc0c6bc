"""Tiny random models and tokenized texts shared by the fine-tuning tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import transformers

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


def tiny_llama():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return transformers.AutoModel.from_config(config, dtype=torch.float32).eval()


CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789 .,'!?-"


def save_tiny_llama_with_tokenizer(folder):
    """tiny_llama and a lower-case character tokenizer of fewer than 50 symbols, saved as a local
    model folder that the project loads like any other (source: local)."""
    import tokenizers

    vocabulary = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{char: 3 + i for i, char in enumerate(CHARACTERS)}}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.normalizer = tokenizers.normalizers.Lowercase()
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex("."), behavior="isolated")
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]"
    )
    model = tiny_llama()
    model.config.architectures = ["LlamaModel"]
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder

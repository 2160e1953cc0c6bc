"""A Hugging Face cache laid out as the hub client lays it out, holding tiny random models of the common
decoder-only families (made from transformers' config classes, no download), each with a real
tokenizer: the embedded SmolLM2's, varied the ways hub tokenizers vary (no pad token, a BOS token,
left padding)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import tokenizers
import torch
import transformers

TINY = {"num_hidden_layers": 2, "num_attention_heads": 2}
WIDTH = 32

# family -> (config class, its keyword arguments, how its tokenizer differs from SmolLM2's).
FAMILIES: dict[str, tuple[str, dict, str]] = {
    "llama": ("LlamaConfig", {"hidden_size": WIDTH, "intermediate_size": 64, "num_key_value_heads": 1}, "bos"),
    "qwen2": ("Qwen2Config", {"hidden_size": WIDTH, "intermediate_size": 64, "num_key_value_heads": 1}, "left"),
    "qwen3": (
        "Qwen3Config",
        {"hidden_size": WIDTH, "intermediate_size": 64, "num_key_value_heads": 1, "head_dim": 16},
        "left",
    ),
    "gemma3": (
        "Gemma3TextConfig",
        {"hidden_size": WIDTH, "intermediate_size": 64, "num_key_value_heads": 1, "head_dim": 16, "sliding_window": 4},
        "bos",
    ),
    "mistral": ("MistralConfig", {"hidden_size": WIDTH, "intermediate_size": 64, "num_key_value_heads": 1}, "bos"),
    "phi3": ("Phi3Config", {"hidden_size": WIDTH, "intermediate_size": 64, "num_key_value_heads": 1}, "as is"),
    "gpt2": ("GPT2Config", {"n_embd": WIDTH, "n_layer": 2, "n_head": 2, "n_positions": 64}, "no pad"),
    "gpt_neox": ("GPTNeoXConfig", {"hidden_size": WIDTH, "intermediate_size": 64}, "no pad"),
    "olmo2": ("Olmo2Config", {"hidden_size": WIDTH, "intermediate_size": 64, "num_key_value_heads": 1}, "no pad"),
    "smollm3": ("SmolLM3Config", {"hidden_size": WIDTH, "intermediate_size": 64, "num_key_value_heads": 1}, "as is"),
}


def hub_snapshot(hub: Path, repo_id: str, kind: str = "models") -> Path:
    """The snapshot folder of repo_id in the hub cache `hub` (HF_HOME/hub), made with its refs/main
    as the hub client makes them; fill it, and offline loading finds the repository by id."""
    repository = hub / f"{kind}--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    (repository / "refs").mkdir(parents=True, exist_ok=True)
    (repository / "refs" / "main").write_text(revision)
    (repository / "blobs").mkdir(exist_ok=True)
    snapshot = repository / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def family_tokenizer(base: str | Path, variant: str) -> transformers.PreTrainedTokenizerBase:
    """SmolLM2's tokenizer, as it is or varied: without a pad token ("no pad"), adding a BOS token to
    every text ("bos"), or padding on the left by default ("left")."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    if variant == "no pad":
        tokenizer.pad_token = None
    elif variant == "left":
        tokenizer.padding_side = "left"
    elif variant == "bos":
        bos = tokenizer.bos_token or tokenizer.eos_token
        tokenizer.backend_tokenizer.post_processor = tokenizers.processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tokenizer.convert_tokens_to_ids(bos))]
        )
    return tokenizer


def save_family(hub: Path, family: str, tokenizer_base: str | Path, repo_id: str | None = None) -> str:
    """A tiny random causal LM of `family` with its tokenizer, in the hub cache under repo_id
    (default tiny-random/<family>); returns the id."""
    class_name, arguments, variant = FAMILIES[family]
    repo_id = repo_id or f"tiny-random/{family}"
    tokenizer = family_tokenizer(tokenizer_base, variant)
    special = {
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    config = getattr(transformers, class_name)(vocab_size=len(tokenizer), **{**TINY, **arguments, **special})
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    snapshot = hub_snapshot(hub, repo_id)
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    return repo_id


def save_dataset(
    hub: Path, repo_id: str, splits: dict[str, pd.DataFrame], config: str | None = None, readme: str = ""
) -> None:
    """A dataset in the hub cache as the hub serves it: parquet files per split under data/ (or under
    the config's folder, listed in the README's configs, when config names one)."""
    snapshot = hub_snapshot(hub, repo_id, kind="datasets")
    folder = snapshot / (config or "data")
    folder.mkdir(exist_ok=True)
    for split, frame in splits.items():
        frame.to_parquet(folder / f"{split}-00000-of-00001.parquet")
    if config:
        files = "".join(f"  - split: {split}\n    path: {config}/{split}-*\n" for split in splits)
        readme = f"configs:\n- config_name: {config}\n  data_files:\n{files}" + readme
    if readme:
        (snapshot / "README.md").write_text(f"---\n{readme}---\n")

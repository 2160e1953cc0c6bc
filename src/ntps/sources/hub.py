"""Hugging Face hub conventions shared by the model and dataset sources."""

from huggingface_hub import constants


def offline_note() -> str:
    """' offline (HF_HUB_OFFLINE is set)' when the hub is switched off, else ''."""
    return " offline (HF_HUB_OFFLINE is set)" if constants.is_offline_mode() else ""

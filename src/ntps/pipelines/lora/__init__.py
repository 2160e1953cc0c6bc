"""`kedro run --pipelines=lora`: the whole LoRA study."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

"""The NTPS stages rerun on the LoRA-adapted models."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

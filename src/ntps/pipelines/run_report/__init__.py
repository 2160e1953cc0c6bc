"""The run report stage."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

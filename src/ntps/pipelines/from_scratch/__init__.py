"""The optional full-training-from-scratch stage and the linear-vs-full table."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

"""The whole DAG: raw texts -> tokens -> statistics -> subspaces -> NTPS tables -> reports."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

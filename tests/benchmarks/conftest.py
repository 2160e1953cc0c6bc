"""The benchmark scripts are not a package: a test imports one from benchmarks/ by name, and every module
imported from that folder is forgotten afterwards, so each test starts from the script's own state."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPOSITORY

BENCHMARKS = REPOSITORY / "benchmarks"


@pytest.fixture
def benchmark_script(monkeypatch):
    """benchmark_script("name") -> the module benchmarks/name.py."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def imported(name: str) -> ModuleType:
        return importlib.import_module(name)

    yield imported
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if location is not None and Path(location).parent == BENCHMARKS:
            sys.modules.pop(name, None)

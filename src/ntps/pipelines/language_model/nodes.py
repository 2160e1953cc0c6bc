"""Make each model loadable offline and describe it for the later stages."""

from __future__ import annotations

import logging
from typing import Any

from ntps.sources.language_models import model_card, resolve_model_location

logger = logging.getLogger(__name__)


def prepare_language_model(model: dict[str, Any], model_cache_dir: str) -> dict[str, Any]:
    """Resolve (and for an embedded GGUF, convert once) the model; return its card."""
    card = model_card(resolve_model_location(model, model_cache_dir), model)
    logger.info(
        "%s at %s: %d hidden states of size %d",
        card["architecture"],
        card["location"],
        card["n_hidden_states"],
        card["hidden_size"],
    )
    return card

"""The models: and datasets: registries: the paper's grid, its offline errors, composed texts."""

from __future__ import annotations

import pandas as pd
import pytest

from ntps.run_parameters import load_parameters
from ntps.sources.language_models import ModelNotAvailableError, resolve_model_location
from ntps.sources.text_datasets import DatasetNotAvailableError, compose_texts, read_raw_dataset
from tests.conftest import REPOSITORY

PAPER_DATASETS = {
    "Bhuvaneshwari/intent_classification",
    "marksverdhei/clickbait_title_classification",
    "stanfordnlp/sst2",
    "PriyaPatel/Bias_identification",
    "legacy-datasets/banking77",
    "dair-ai/emotion",
    "ucirvine/sms_spam",
    "curaihealth/medical_questions_pairs",
    "cornell-movie-review-data/rotten_tomatoes",
    "tau/commonsense_qa",
    "climatebert/climate_sentiment",
    "stanfordnlp/imdb",
}


PAPER_MODELS = {
    "Qwen/Qwen2-0.5B",
    "Qwen/Qwen2-1.5B",
    "Qwen/Qwen2-7B",
    "apple/OpenELM-270M",
    "apple/OpenELM-450M",
    "apple/OpenELM-1_1B",
    "apple/OpenELM-3B",
    "meta-llama/Meta-Llama-3-8B",
}


@pytest.fixture(scope="module")
def parameters():
    return load_parameters(REPOSITORY)


def test_every_registry_entry_names_its_text_label_and_splits(parameters):
    datasets, models = parameters["datasets"], parameters["models"]
    assert PAPER_DATASETS <= {spec.get("hf_id") for spec in datasets.values()}
    assert PAPER_MODELS <= {spec.get("hf_id") for spec in models.values()}
    for name, spec in datasets.items():
        assert spec["source"] in {"embedded", "huggingface", "local"}, name
        assert spec.get("label_column"), name
        assert bool(spec.get("text_column")) != bool(spec.get("text_columns")), name
        if spec["source"] == "huggingface":
            assert "train" in spec["splits"] and set(spec["splits"]) <= {"train", "test"}, name
    for name, spec in models.items():
        assert spec["source"] in {"embedded_gguf", "huggingface", "local"}, name
        if "OpenELM" in spec.get("hf_id", ""):
            assert spec["trust_remote_code"] and spec["tokenizer"] == "meta-llama/Llama-2-7b-hf"


def test_registry_entries_missing_offline_name_their_id_and_how_to_fetch_them(parameters):
    with pytest.raises(
        DatasetNotAvailableError,
        match=r"(?s)'stanfordnlp/sst2'.*HF_HUB_OFFLINE.*hf download stanfordnlp/sst2 --repo-type dataset",
    ):
        read_raw_dataset(parameters["datasets"]["sst2"])
    with pytest.raises(ModelNotAvailableError, match=r"(?s)'Qwen/Qwen2-0.5B'.*hf download Qwen/Qwen2-0.5B"):
        resolve_model_location(parameters["models"]["qwen2_0_5b"], "unused")


def test_texts_compose_from_several_columns_and_multiple_choices(parameters):
    spec = parameters["datasets"]["commonsense_qa"]
    raw = pd.DataFrame(
        {
            "question": ["Where do fish live?"],
            "choices": [{"label": ["A", "B"], "text": ["water", "trees"]}],
            "answerKey": ["A"],
        }
    )
    assert compose_texts(raw, spec["text_columns"], spec["text_template"]).tolist() == [
        "Where do fish live? (A) water (B) trees"
    ]
    pairs = parameters["datasets"]["medical_questions_pairs"]
    raw = pd.DataFrame({"question_1": ["Is it flu?"], "question_2": ["Do I have flu?"], "label": [1]})
    assert compose_texts(raw, pairs["text_columns"], pairs["text_template"]).tolist() == ["Is it flu?\nDo I have flu?"]

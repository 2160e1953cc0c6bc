"""The tokenization stage in memory: each dataset with each model's tokenizer, truncation recorded."""

from __future__ import annotations

import transformers

from ntps.pipelines import tokenization
from tests.pipelines.conftest import DATASETS, MODEL, build, run_in_memory, tiny_folder


def test_every_pair_is_tokenized_with_the_models_tokenizer_and_cut_at_max_tokens(stage_parameters, stage_data):
    outputs = run_in_memory(build(tokenization, stage_parameters), stage_parameters, stage_data)
    assert set(outputs) == {f"{MODEL}.{dataset}.tokenized_texts" for dataset in DATASETS}
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_folder(stage_parameters))
    max_tokens = stage_parameters["tokenization"]["max_tokens"]
    for dataset in DATASETS:
        tokenized = outputs[f"{MODEL}.{dataset}.tokenized_texts"]
        assert len(tokenized) == len(stage_data[f"{dataset}.labeled_texts"])
        assert tokenized["n_tokens"].le(max_tokens).all()
        assert (tokenized["truncated"] == tokenized["n_tokens_untruncated"].gt(max_tokens)).all()
        assert tokenized["truncated"].any()  # real texts are longer than 24 characters
        for row in tokenized.head(5).itertuples():
            assert list(row.input_ids) == tokenizer(row.text)["input_ids"][:max_tokens]

"""Fine-tuning: which modules LoRA adapts, what it and training from scratch train, resuming from a
checkpoint, the stored adapter applied to the backbone, and the whole LoRA study end to end."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
import transformers
import yaml
from kedro.io.core import Version

from ntps.core.errors import NtpsInputError
from ntps.core.ntps import VARIANTS
from ntps.core.statistics import LayerStatistics
from ntps.io import LoraAdapterDataset
from ntps.modeling.adapter_format import LoraAdapter
from ntps.modeling.classifiers import (
    attention_projection_modules,
    lora_adapter,
    lora_classifier,
    scratch_classifier,
    trainable_state,
)
from ntps.modeling.training import accuracy, train_classifier
from ntps.reports.lora_study import accuracy_gains, gain_correlation_summary, ntps_change_table
from ntps.sources.language_models import load_backbone
from tests.conftest import kedro_run
from tests.test_sources_and_extraction import tiny_llama

SETTINGS = {
    "rank": 4,
    "alpha": 4,
    "dropout": 0.05,
    "learning_rate": 1.0e-2,
    "eps": [1.0e-30, 1.0e-3],
    "clip_threshold": 1.0,
    "decay_rate": 0.8,
    "weight_decay": 1.0e-5,
    "warmup_fraction": 0.05,
    "steps": 6,
    "batch_size": 4,
    "checkpoint_every": 2,
    "seed": 0,
}


def tiny_gpt2():
    config = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=32)
    return transformers.AutoModel.from_config(config)


class FusedQkvAttention(torch.nn.Module):
    """Stands in for OpenELM's attention, whose query/key/value projection is one qkv_proj."""

    def __init__(self):
        super().__init__()
        self.qkv_proj = torch.nn.Linear(8, 24)
        self.out_proj = torch.nn.Linear(8, 8)


def test_qkv_modules_are_found_per_architecture_and_unknown_ones_are_named():
    assert attention_projection_modules(tiny_gpt2()) == ["c_attn"]
    assert attention_projection_modules(tiny_llama()) == ["q_proj", "k_proj", "v_proj"]
    assert attention_projection_modules(torch.nn.ModuleDict({"attention": FusedQkvAttention()})) == ["qkv_proj"]
    with pytest.raises(NtpsInputError, match=r"linear layers are named \['dense', 'proj'\]"):
        attention_projection_modules(torch.nn.ModuleDict({"dense": torch.nn.Linear(4, 4), "proj": torch.nn.Linear(4, 4)}))


def tokenized_texts(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, size=n)
    return pd.DataFrame(
        {
            "input_ids": [rng.integers(1, 50, size=length).tolist() for length in lengths],
            "n_tokens": lengths,
            "label_id": rng.integers(0, 3, size=n),
        }
    )


def test_lora_trains_only_the_qkv_adapters_and_the_head_and_leaves_the_base_unchanged(tmp_path):
    classifier = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    trainable = trainable_state(classifier)
    # rank x (in + out) per q, k, v projection (16 -> 16) in each of 2 blocks, plus a 16 -> 3 head.
    assert sum(tensor.numel() for tensor in trainable.values()) == 4 * (16 + 16) * 3 * 2 + 16 * 3 + 3
    assert all(
        ("lora_" in name and any(p in name for p in ("q_proj", "k_proj", "v_proj"))) or name.startswith("head.")
        for name in trainable
    )
    frozen_before = {name: value.clone() for name, value in classifier.state_dict().items() if name not in trainable}
    losses = train_classifier(
        classifier, tokenized_texts(16, seed=1), SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "c.pt"
    )
    assert len(losses) == 6 and all(np.isfinite(losses))
    after = classifier.state_dict()
    assert all(torch.equal(after[name], value) for name, value in frozen_before.items())
    assert any(not torch.equal(trainable_state(classifier)[name], value) for name, value in trainable.items())
    assert 0 <= accuracy(classifier, tokenized_texts(8, seed=2), batch_size=4, pad_token_id=0) <= 1


def test_a_resumed_run_ends_with_the_adapter_of_an_uninterrupted_one(tmp_path):
    texts = tokenized_texts(16, seed=3)
    uninterrupted = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    straight_losses = train_classifier(
        uninterrupted, texts, SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "straight.pt"
    )

    killed = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    killed_losses = train_classifier(
        killed, texts, SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "resumed.pt", stop_after=3
    )
    assert len(killed_losses) == 3
    restarted = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)  # a new process, from the checkpoint
    resumed_losses = train_classifier(restarted, texts, SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "resumed.pt")
    assert resumed_losses == straight_losses and resumed_losses[:3] == killed_losses, "the loss log survives the restart"

    expected, resumed = trainable_state(uninterrupted), trainable_state(restarted)
    assert expected.keys() == resumed.keys()
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=0)


def test_training_from_scratch_trains_every_parameter_of_a_randomly_initialized_copy(tmp_path):
    pretrained = tiny_llama()
    classifier = scratch_classifier(pretrained.config, n_classes=3, seed=1)
    assert all(parameter.requires_grad for parameter in classifier.parameters())
    assert not torch.equal(classifier.backbone.embed_tokens.weight, pretrained.embed_tokens.weight), "random weights"
    assert sum(p.numel() for p in classifier.backbone.parameters()) == sum(p.numel() for p in pretrained.parameters())
    before = {name: value.clone() for name, value in classifier.state_dict().items()}
    train_classifier(
        classifier, tokenized_texts(16, seed=4), SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "s.pt", description="x"
    )
    after = classifier.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert "backbone.layers.0.mlp.up_proj.weight" in changed and "head.weight" in changed


def test_the_stored_adapter_reproduces_the_trained_backbone_when_loaded_for_the_ntps_stages(tmp_path):
    """The versioned adapter folder, merged into a fresh backbone by load_backbone (what the NTPS
    stages do after LoRA), gives the hidden states of the trained classifier's own backbone."""
    base = tiny_llama()
    base_folder = tmp_path / "base"
    base.save_pretrained(base_folder)
    classifier = lora_classifier(tiny_llama(), n_classes=3, settings=SETTINGS, seed=0)
    train_classifier(classifier, tokenized_texts(16, seed=5), SETTINGS, pad_token_id=0, checkpoint_path=tmp_path / "c.pt")
    adapter = lora_adapter(classifier)
    assert adapter.peft_config["r"] == 4 and sorted(adapter.peft_config["target_modules"]) == ["k_proj", "q_proj", "v_proj"]

    dataset = LoraAdapterDataset(filepath=str(tmp_path / "lora_adapter"), version=Version(None, "v1"))
    dataset.save(adapter)
    stored = LoraAdapterDataset(filepath=str(tmp_path / "lora_adapter"), version=Version(None, None)).load()
    assert stored.location.endswith("v1/lora_adapter")
    for name, value in adapter.adapter_weights.items():
        np.testing.assert_array_equal(stored.adapter_weights[name], value)
    np.testing.assert_array_equal(stored.head_weights["weight"], adapter.head_weights["weight"])

    merged = load_backbone(str(base_folder), {}, "float32", "cpu", adapter=stored.location)
    pretrained = load_backbone(str(base_folder), {}, "float32", "cpu")
    input_ids = torch.tensor([[3, 7, 11, 2, 9]])
    with torch.inference_mode():
        expected = classifier.backbone(input_ids=input_ids, use_cache=False).last_hidden_state
        got = merged(input_ids=input_ids, use_cache=False).last_hidden_state
        untouched = pretrained(input_ids=input_ids, use_cache=False).last_hidden_state
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (got - untouched).abs().max() > 1e-4, "the adapter changes the hidden states"


def test_reports_compute_the_gain_and_the_relative_ntps_change_and_refuse_unknown_pairs():
    probe = pd.DataFrame(
        {
            "model": "m",
            "dataset": ["a", "b", "c"],
            "hidden_state": 4,
            "logistic_test_accuracy": [0.5, 0.7, 0.9],
            "logme": [1.0, 2.0, 3.0],
            "h_score": [0.1, 0.2, 0.3],
        }
    )
    lora = pd.DataFrame(
        {
            "model": "m",
            "dataset": ["a", "b", "c"],
            "lora_test_accuracy": [0.9, 0.8, 0.95],
            "lora_train_accuracy": 1.0,
            "steps": 4,
        }
    )
    gains = accuracy_gains(lora, probe)
    np.testing.assert_allclose(gains["accuracy_gain"], [0.4, 0.1, 0.05])
    with pytest.raises(NtpsInputError, match=r"\('m', 'z'\)"):
        accuracy_gains(lora.assign(dataset=["a", "b", "z"]), probe)

    # NTPS tables of 2 hidden states x d = 4: before, and after scaled up by 10 % everywhere.
    rows = [
        {"model": "m", "dataset": d, "layer": layer, "k": k, "k_fraction": k / 4, "on_paper_grid": True, "variant": v}
        for d in "abc"
        for layer in (0, 1)
        for k in (1, 2, 3, 4)
        for v in ("paper", "signal")
    ]
    # released_code rows sit at fractions f of a rank (3 here), with k = int(f rank).
    rows += [
        {"model": "m", "dataset": d, "layer": layer, "k": int(f * 3), "k_fraction": f, "on_paper_grid": True}
        | {"variant": "released_code"}
        for d in "abc"
        for layer in (0, 1)
        for f in (0.35, 0.55, 0.75)
    ]
    before = pd.DataFrame(rows).assign(ntps=lambda t: 0.1 + 0.1 * t["k"] + 0.01 * t["layer"])
    after = before.assign(ntps=before["ntps"] * 1.1)
    settings = {"k_search": "all", "exclude_final_hidden_state": False}
    change_all = ntps_change_table(before, after, settings, {"layer": -1, "k_fraction": 0.5})
    released = change_all[change_all["variant"] == "released_code"]
    assert len(released) == 3 and (released["k_fraction"] == 0.55).all() and (released["k"] == 1).all()
    np.testing.assert_allclose(released["relative_change_percent"], 10.0)
    change = change_all[change_all["variant"] != "released_code"]
    assert len(change) == 6 and (change["layer"] == 1).all() and (change["k"] == 2).all()
    np.testing.assert_allclose(change["ntps_before"], 0.31)
    np.testing.assert_allclose(change["relative_change_percent"], 10.0)
    np.testing.assert_allclose(change["grid_median_relative_change_percent"], 10.0)
    assert (change["grid_share_increased"] == 1).all()
    with pytest.raises(NtpsInputError, match="layer 2 does not exist"):
        ntps_change_table(before, after, settings, {"layer": 2, "k_fraction": 0.5})


def test_ntps_that_ranks_datasets_by_gain_gets_r_minus_one_and_the_probe_baseline_its_own_r():
    datasets = [f"d{i}" for i in range(5)]
    gain = np.array([0.30, 0.05, 0.20, 0.10, 0.15])
    gains = pd.DataFrame(
        {
            "model": "m",
            "dataset": datasets,
            "accuracy_gain": gain,
            "probe_test_accuracy": [0.6, 0.7, 0.8, 0.9, 0.5],
            "logme": 1.0,
            "h_score": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    rows = [
        {"model": "m", "dataset": d, "layer": layer, "k": 1, "k_fraction": 0.5, "on_paper_grid": True, "variant": v}
        for d in datasets
        for layer in (0, 1, 2)
        for v in ("paper", "signal")
    ]
    ntps = pd.DataFrame(rows)
    # Layer 1 ranks the datasets exactly against the gain; layers 0 and 2 are noise.
    noise = dict(zip(datasets, [0.3, 0.1, 0.5, 0.2, 0.4]))
    ntps["ntps"] = [
        1 - gain[datasets.index(row.dataset)] if row.layer == 1 else noise[row.dataset] for row in ntps.itertuples()
    ]
    settings = {
        "k_search": "all",
        "exclude_final_hidden_state": False,
        "bootstrap_resamples": 200,
        "permutations": 200,
        "confidence": 0.95,
        "seed": 0,
    }
    summary = gain_correlation_summary(ntps, gains, settings).set_index(["score", "selection"])
    best = summary.loc[("ntps_paper", "best_in_sample")]
    assert best["spearman_r"] == pytest.approx(-1.0) and best["layer"] == 1 and best["expected_sign"] == -1
    assert summary.loc[("probe_test_accuracy", "none"), "spearman_r"] == pytest.approx(
        scipy.stats.spearmanr(gains["probe_test_accuracy"], gain).statistic
    )
    assert np.isnan(summary.loc[("logme", "none"), "spearman_r"]), "a constant score ranks nothing"


@pytest.mark.end_to_end
def test_lora_and_from_scratch_pipelines_on_the_embedded_default(project, model_cache, embedded_model):
    """ntps, then lora and from_scratch with a few steps, on the embedded model and 3 datasets."""
    datasets = ["rotten_tomatoes", "election_tweets", "clothing_departments"]
    (project / "conf/local/parameters.yml").write_text(
        yaml.safe_dump({"run": {"models": ["smollm2_135m"], "datasets": datasets}})
    )
    # The released procedure's rows in Table 2 are tested on small tables; here it would only add minutes.
    quick = {"ntps_scores.released_code": False}
    assert kedro_run(project, model_cache, quick).returncode == 0
    steps = {"batch_size": 4, "checkpoint_every": 2, "steps": 4}
    lora_params = {**quick, **{f"lora.{key}": value for key, value in steps.items()}}
    lora = kedro_run(project, model_cache, lora_params, pipeline="lora")
    assert lora.returncode == 0, lora.stderr[-4000:]

    pair = project / "data/06_models/smollm2_135m/election_tweets"
    (adapter_folder,) = (pair / "lora_adapter").glob("*/lora_adapter")
    adapter = LoraAdapter.load(adapter_folder)
    # rank 32 adapters on q, k, v (576 -> 576 for q, 576 -> 192 for k and v) in each of 30 blocks
    assert sum(value.size for value in adapter.adapter_weights.values()) == 30 * 32 * ((576 + 576) + 2 * (576 + 192))
    assert adapter.head_weights["weight"].shape == (2, 576)
    (card_path,) = (pair / "adapted_language_model_card.json").glob("*/*.json")
    assert json.loads(card_path.read_text())["adapter"] == str(adapter_folder.resolve())

    def statistics(relative):
        (path,) = (project / "data/04_feature/smollm2_135m/election_tweets" / relative).glob("*/*.npz")
        return LayerStatistics.from_arrays(dict(np.load(path)))

    before, after = statistics("layer_statistics.npz"), statistics("after_lora/layer_statistics.npz")
    # The adapters sit inside the attention blocks: the embeddings are untouched, the blocks are not.
    np.testing.assert_allclose(after.cov0[0], before.cov0[0], rtol=1e-10, atol=0)
    assert not np.allclose(after.cov0[-1], before.cov0[-1], rtol=1e-6)

    reports = project / "data/08_reporting"
    gains = pd.read_parquet(next((reports / "lora_gains.parquet").glob("*/*")))
    assert sorted(gains["dataset"]) == sorted(datasets)
    np.testing.assert_allclose(gains["accuracy_gain"], gains["lora_test_accuracy"] - gains["probe_test_accuracy"])
    change = pd.read_parquet(next((reports / "ntps_change_after_lora.parquet").glob("*/*")))
    assert len(change) == (len(VARIANTS) - 1) * len(datasets) and change["ntps_after"].between(0, 1).all()
    report = next((reports / "lora_report.md").glob("*/*")).read_text()
    assert "NTPS after LoRA (the paper's Table 2)" in report and "| smollm2_135m | ntps_paper | best_in_sample |" in report
    for name in ("ntps_vs_lora_gain.png", "ntps_change_after_lora.png", "lora_training_curves.png"):
        assert next((reports / name).glob("*/*")).stat().st_size > 10_000
    assert not list((project / "data/06_models/training_checkpoints").rglob("*.pt")), "checkpoints go once training ends"

    scratch = kedro_run(
        project, model_cache, {f"from_scratch.{key}": value for key, value in steps.items()}, pipeline="from_scratch"
    )
    assert scratch.returncode == 0, scratch.stderr[-4000:]
    table = pd.read_parquet(next((reports / "linear_vs_full.parquet").glob("*/*")))
    assert sorted(table["dataset"]) == sorted(datasets) and table["full_test_accuracy"].between(0, 1).all()
    assert (
        "| dataset | smollm2_135m Linear | smollm2_135m Full |"
        in next((reports / "linear_vs_full_report.md").glob("*/*")).read_text()
    )

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ntps").experiment_id], order_by=["attributes.start_time ASC"])
    lora_run = runs[1]
    assert {"reports/lora_report.md", "reports/ntps_vs_lora_gain.png", "reports/lora_gains.parquet"} <= {
        item.path for item in client.list_artifacts(lora_run.info.run_id, "reports")
    }
    assert "lora_summary_metrics.accuracy_gain.smollm2_135m.election_tweets" in lora_run.data.metrics

"""benchmarks/lora_learning_rate.py: the learning rate chosen from validation curves alone, each run kept as
it finishes, and a rerun that only trains what is missing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ntps.run_parameters import load_parameters
from tests.conftest import REPOSITORY


@pytest.fixture
def sweep_script(benchmark_script):
    return benchmark_script("lora_learning_rate")


def planted_run(dataset: str, rate: float, accuracy: float, standard_error: float = 0.02) -> dict:
    return {"dataset": dataset, "learning_rate": rate, "last_epoch_accuracy": accuracy, "standard_error": standard_error}


def test_each_task_takes_its_most_accurate_rate_and_the_ranks_pick_the_best_overall(sweep_script):
    runs = [
        planted_run("a", 1e-4, 0.60),
        planted_run("a", 1e-3, 0.70),
        planted_run("a", 1e-2, 0.65),
        planted_run("b", 1e-4, 0.50),
        planted_run("b", 1e-3, 0.55),
        planted_run("b", 1e-2, 0.58),
        planted_run("c", 1e-4, 0.90),  # c ran one rate only: it has a choice but no rank
    ]
    chosen = sweep_script.chosen_learning_rates(runs)
    assert chosen["per_task"] == {"a": 1e-3, "b": 1e-2, "c": 1e-4}
    assert chosen["complete_tasks"] == ["a", "b"]
    assert chosen["mean_rank"] == {"0.0001": 3.0, "0.001": 1.5, "0.01": 1.5}
    assert chosen["best"] == 1e-3  # a tie goes to the first, the smaller rate
    # Within one standard error (0.02) of the highest: on a 1e-3 only, on b 1e-2 only: no rate on both.
    assert chosen["one_standard_error"] is None


def test_the_one_standard_error_rule_takes_the_smallest_rate_near_the_highest_on_every_task(sweep_script):
    # As in the sweep: accuracy rises with the rate and collapses at 1e-2; 3e-3 is highest by less than
    # one standard error over 1e-3 on both tasks, so the smaller, safer 1e-3 is chosen.
    runs = [
        planted_run("a", 3e-4, 0.70, 0.034),
        planted_run("a", 1e-3, 0.72, 0.034),
        planted_run("a", 3e-3, 0.75, 0.033),
        planted_run("a", 1e-2, 0.58, 0.037),
        planted_run("b", 3e-4, 0.47, 0.038),
        planted_run("b", 1e-3, 0.65, 0.036),
        planted_run("b", 3e-3, 0.66, 0.036),
        planted_run("b", 1e-2, 0.06, 0.018),
    ]
    chosen = sweep_script.chosen_learning_rates(runs)
    assert chosen["best"] == 3e-3 and chosen["one_standard_error"] == 1e-3
    runs[1] = planted_run("a", 1e-3, 0.70, 0.034)  # now 0.05 below a's highest: more than its 0.033
    assert sweep_script.chosen_learning_rates(runs)["one_standard_error"] == 3e-3


@pytest.mark.end_to_end
def test_a_sweep_trains_on_validation_curves_and_a_rerun_trains_only_what_is_missing(
    sweep_script, tiny_model, tmp_path, monkeypatch
):
    parameters = load_parameters(REPOSITORY)
    parameters["models"]["tiny"] = {"source": "local", "path": str(tiny_model)}
    parameters["sampling"]["max_texts"] = {"train": 64, "test": 16}
    parameters["tokenization"]["max_tokens"] = 16
    parameters["lora"] |= {"epochs": 2, "batch_size": 8, "evaluations_per_epoch": 2, "rank": 4, "alpha": 4}
    output = tmp_path / "sweep.json"
    trained = []
    learning_curve = sweep_script.learning_curve

    def counted(parameters, card, pad_token_id, train, validation, rate):
        # Only training texts reach the sweep: the held-out split is never loaded.
        assert set(train["split"]) == set(validation["split"]) == {"train"}
        trained.append(rate)
        return learning_curve(parameters, card, pad_token_id, train, validation, rate)

    monkeypatch.setattr(sweep_script, "learning_curve", counted)
    runs = sweep_script.sweep(parameters, "test", "tiny", ["rotten_tomatoes"], [1e-4, 1e-2], output, "first")
    assert trained == [1e-4, 1e-2] and [run["learning_rate"] for run in runs] == [1e-4, 1e-2]
    for run in runs:
        # 2 epochs of 54 training texts in batches of 8 (6 steps each), evaluated twice per epoch.
        assert (run["training_texts"], run["validation_texts"]) == (54, 10)
        assert run["steps"] == 12 and run["validation_steps"] == [3, 6, 9, 12]
        assert run["last_epoch_accuracy"] == pytest.approx(np.mean(run["validation_accuracies"][-2:]))
        accuracy = run["last_epoch_accuracy"]
        assert run["standard_error"] == pytest.approx(np.sqrt(accuracy * (1 - accuracy) / 10))
    written = json.loads(output.read_text(encoding="utf-8"))
    assert written["command"] == "first" and written["chosen"] == sweep_script.chosen_learning_rates(runs)

    # A rerun with one more rate trains that one only and keeps the others.
    runs = sweep_script.sweep(parameters, "test", "tiny", ["rotten_tomatoes"], [1e-4, 1e-2, 1e-3], output, "second")
    assert trained == [1e-4, 1e-2, 1e-3] and len(runs) == 3
    # Other settings start over: the runs of the old ones do not mix with the new.
    parameters["lora"]["epochs"] = 3
    runs = sweep_script.sweep(parameters, "test", "tiny", ["rotten_tomatoes"], [1e-2], output, "third")
    assert trained == [1e-4, 1e-2, 1e-3, 1e-2] and len(runs) == 1

    figure = tmp_path / "curves.png"
    sweep_script.plot_learning_curves(runs, figure)
    assert figure.stat().st_size > 0

"""Which peak learning rate the CPU LoRA configuration should use, read from validation curves only.

For each task and each peak learning rate, LoRA trains with the project's `lora:` settings (that
learning rate in place of the configured one) on the task's training texts less the validation
share those settings carve out, and measures the validation accuracy evaluations_per_epoch times
per epoch, as the pipeline does. The held-out texts are never loaded: the learning rate is chosen
on the validation texts, which come out of the training split.

    KEDRO_ENV=study .venv/bin/python benchmarks/lora_learning_rate.py

Each (task, learning rate) is written to the results file as soon as it finishes, and a rerun with
the same settings skips those already there, so a killed sweep goes on where it stopped. The rule
that picks a learning rate: the highest mean validation accuracy over the last epoch's evaluations
(the quantity the plateau criterion compares, core/learning_curves.py), per task; over the tasks,
the learning rate with the best mean rank, and by the one-standard-error rule the smallest learning
rate within one standard error of every task's highest (the farthest from the rates that diverge,
at no accuracy the validation texts can tell). Results go to benchmarks/results/lora_learning_rate.json,
from which docs/lora.md renders its table, and the validation curves to
docs/figures/lora_learning_rate.png (`--plot-only` redraws them from the results file).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ntps_benchmark import configure_logging, machine, project_parameters, registry_entry

DEFAULT_OUTPUT = Path("benchmarks") / "results" / "lora_learning_rate.json"
DEFAULT_FIGURE = Path("docs") / "figures" / "lora_learning_rate.png"
DEFAULT_DATASETS = ("rotten_tomatoes", "newsgroups20", "clothing_ratings")
DEFAULT_LEARNING_RATES = (1.0e-4, 3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2)

logger = logging.getLogger("ntps.benchmark.lora_learning_rate")


def training_texts(parameters: dict, model: str, dataset: str):
    """(card, pad token id, the texts LoRA trains on, the validation texts), as the pipeline's
    data_ingestion, tokenization and fine_tune_lora nodes make them; the held-out split is dropped."""
    from ntps.modeling.hidden_states import tokenize_labeled_texts
    from ntps.modeling.training import validation_split
    from ntps.sources.language_models import load_tokenizer, model_card, resolve_model_location
    from ntps.sources.text_datasets import read_raw_dataset, select_labeled_texts

    spec = registry_entry(parameters, "models", model)
    card = model_card(resolve_model_location(spec, parameters["model_cache_dir"]), spec)
    tokenizer = load_tokenizer(card["location"], card["spec"])
    entry = registry_entry(parameters, "datasets", dataset)
    texts = select_labeled_texts(read_raw_dataset(entry), entry, parameters["sampling"])
    train = tokenize_labeled_texts(tokenizer, texts[texts["split"] == "train"], parameters["tokenization"]["max_tokens"])
    settings = {**parameters["training"], **parameters["lora"]}
    kept, validation = validation_split(train, float(settings["validation_fraction"]), settings["seed"])
    return card, tokenizer.pad_token_id, kept, validation


def learning_curve(parameters: dict, card: dict, pad_token_id: int, train, validation, learning_rate: float) -> dict:
    """Trains LoRA at this peak learning rate and returns its validation curve and plateau."""
    import transformers

    from ntps.core.linalg import resolve_device
    from ntps.modeling.classifiers import lora_classifier
    from ntps.modeling.training import train_classifier, training_attention, training_steps
    from ntps.sources.language_models import DTYPES

    # Whole curves over the configured epochs, so that every rate is compared at the same length.
    settings = {**parameters["training"], **parameters["lora"], "learning_rate": learning_rate, "stop_at_plateau": False}
    device = resolve_device(settings["device"])
    backbone = transformers.AutoModel.from_pretrained(
        card["location"],
        dtype=DTYPES[settings["dtype"]],
        attn_implementation=training_attention(device),
        trust_remote_code=card["spec"].get("trust_remote_code", False),
    ).to(device)
    n_classes = int(max(train["label_id"].max(), validation["label_id"].max())) + 1
    classifier = lora_classifier(backbone, n_classes, settings, seed=settings["seed"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        history = train_classifier(
            classifier,
            train,
            settings,
            pad_token_id,
            os.path.join(folder, "checkpoint.pt"),
            description=f"LoRA at learning rate {learning_rate:g}",
            validation=validation,
        )
    seconds = time.perf_counter() - started
    per_epoch = int(settings["evaluations_per_epoch"])
    curve = history.plateau(per_epoch, len(validation))
    return {
        "learning_rate": learning_rate,
        "steps": training_steps(settings, len(train)),
        "validation_steps": history.validation_steps,
        "validation_accuracies": history.validation_accuracies,
        "last_epoch_accuracy": float(np.mean(history.validation_accuracies[-per_epoch:])),
        "plateau_reached": curve.reached,
        "last_epoch_gain": curve.last_epoch_gain,
        "standard_error": curve.standard_error,
        "final_training_loss": history.losses[-1],
        "seconds": seconds,
    }


def chosen_learning_rates(runs: list[dict]) -> dict:
    """Per task, the learning rate of the highest last-epoch validation accuracy; over the tasks
    that ran every learning rate, each learning rate's mean rank (1 = best), the best of them, and
    the one-standard-error choice: the smallest learning rate whose accuracy is within the highest's
    standard error of the highest on each of those tasks (None when no rate is)."""
    tasks = sorted({run["dataset"] for run in runs})
    rates = sorted({run["learning_rate"] for run in runs})
    accuracy = {(run["dataset"], run["learning_rate"]): run["last_epoch_accuracy"] for run in runs}
    per_task = {
        task: max((rate for rate in rates if (task, rate) in accuracy), key=lambda rate: accuracy[task, rate])
        for task in tasks
    }
    complete = [task for task in tasks if all((task, rate) in accuracy for rate in rates)]
    ranks = {rate: [] for rate in rates}
    for task in complete:
        ordered = sorted(rates, key=lambda rate: -accuracy[task, rate])
        for rank, rate in enumerate(ordered, start=1):
            ranks[rate].append(rank)
    mean_rank = {rate: float(np.mean(values)) for rate, values in ranks.items() if values}
    error = {(run["dataset"], run["learning_rate"]): run["standard_error"] for run in runs}
    near_best = [
        rate
        for rate in rates
        if complete
        and all(accuracy[task, rate] >= accuracy[task, per_task[task]] - error[task, per_task[task]] for task in complete)
    ]
    return {
        "per_task": per_task,
        "complete_tasks": complete,
        "mean_rank": {f"{rate:g}": value for rate, value in mean_rank.items()},
        "best": min(mean_rank, key=mean_rank.get) if mean_rank else None,
        "one_standard_error": near_best[0] if near_best else None,
    }


def plot_learning_curves(runs: list[dict], path: Path) -> None:
    """One panel per task: the validation accuracy against the training step, a line per learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({run["dataset"] for run in runs})
    rates = sorted({run["learning_rate"] for run in runs})
    colors = dict(zip(rates, plt.cm.viridis(np.linspace(0, 0.9, len(rates))), strict=True))
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        for run in sorted((run for run in runs if run["dataset"] == task), key=lambda run: run["learning_rate"]):
            axis.plot(
                run["validation_steps"],
                run["validation_accuracies"],
                marker="o",
                markersize=3,
                color=colors[run["learning_rate"]],
                label=f"{run['learning_rate']:.0e}".replace("e-0", "e-"),
            )
        axis.set(title=task, xlabel="training step")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation accuracy")
    axes[0][-1].legend(title="peak learning rate", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a model of the models: registry (default: the first of run.models)")
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS), help="datasets of the registry")
    parser.add_argument("--learning-rates", nargs="+", type=float, default=list(DEFAULT_LEARNING_RATES))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--figure", type=Path, default=DEFAULT_FIGURE)
    parser.add_argument("--plot-only", action="store_true", help="redraw the figure from the results file and stop")
    return parser


def sweep(
    parameters: dict, env: str, model: str, datasets: list[str], learning_rates: list[float], output: Path, command: str
) -> list[dict]:
    """Every (dataset, learning rate) not yet in output for the same settings, each written there as
    it finishes; returns all the runs of those settings."""
    lora = {**parameters["training"], **parameters["lora"]}
    configuration = {
        "env": env,
        "model": model,
        "lora": {key: lora[key] for key in sorted(lora) if key not in ("learning_rate", "checkpoint_dir")},
        "sampling": parameters["sampling"],
    }
    previous = json.loads(output.read_text(encoding="utf-8")) if output.exists() else {}
    runs = previous.get("runs", []) if previous.get("configuration") == configuration else []
    done = {(run["dataset"], run["learning_rate"]) for run in runs}
    for dataset in datasets:
        todo = [rate for rate in learning_rates if (dataset, rate) not in done]
        if not todo:
            continue
        card, pad_token_id, train, validation = training_texts(parameters, model, dataset)
        logger.info("%s: %d training texts, %d for validation", dataset, len(train), len(validation))
        for rate in todo:
            run = {"dataset": dataset, "training_texts": len(train), "validation_texts": len(validation)}
            run |= learning_curve(parameters, card, pad_token_id, train, validation, rate)
            logger.info(
                "%s at learning rate %g: last-epoch validation accuracy %.3f, plateau %s, %.0f s",
                dataset, rate, run["last_epoch_accuracy"], run["plateau_reached"], run["seconds"],
            )  # fmt: skip
            runs.append(run)
            results = {
                "command": command,
                "machine": machine(),
                "configuration": configuration,
                "runs": runs,
                "chosen": chosen_learning_rates(runs),
            }
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return runs


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    configure_logging()
    if not arguments.plot_only:
        parameters = project_parameters()
        model = arguments.model or parameters["run"]["models"][0]
        command = shlex.join([os.path.relpath(sys.executable), os.path.relpath(__file__), *argv])
        env = os.environ.get("KEDRO_ENV", "local")
        sweep(parameters, env, model, arguments.datasets, arguments.learning_rates, arguments.output, command)
    runs = json.loads(arguments.output.read_text(encoding="utf-8"))["runs"]
    plot_learning_curves(runs, arguments.figure)
    chosen = chosen_learning_rates(runs)
    logger.info("per task: %s; mean rank: %s; best: %s", chosen["per_task"], chosen["mean_rank"], chosen["best"])


if __name__ == "__main__":
    main()

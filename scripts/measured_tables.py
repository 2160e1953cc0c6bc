"""The measured tables of docs/: exported from a run's outputs into benchmarks/results/, then rendered
into the pages between `<!-- measured: <id> -->` and `<!-- /measured -->`, so that a rerun updates them
and no figure is typed by hand.

    .venv/bin/python scripts/measured_tables.py export --env base    # after kedro run --pipelines=ntps
    .venv/bin/python scripts/measured_tables.py export --env study   # after kedro run --env study --pipelines=ntps
    .venv/bin/python scripts/measured_tables.py export --env study --lora   # after ... --pipelines=lora
    .venv/bin/python scripts/measured_tables.py render               # rewrite every table that has results
    .venv/bin/python scripts/measured_tables.py render --check       # exit 1 where a page differs from its results
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ntps.reports.correlation_study import summary_table
from ntps.reports.lora_study import ntps_rose

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "benchmarks" / "results"
DOCS = REPOSITORY / "docs"
MARKED = re.compile(r"(<!-- measured: ([\w-]+) -->\n)(.*?)(<!-- /measured -->)", re.DOTALL)
# The share of d at which the default run's label_variance_kept is tabulated (scores.md).
KEPT_FRACTIONS = (0.05, 0.25, 0.5, 0.75)

logger = logging.getLogger("measured_tables")


def run_folder(env: str) -> Path:
    """Where one environment's run results live: benchmarks/results/<env>_run/."""
    return RESULTS / f"{'default' if env == 'base' else env}_run"


def correlation_table(env: str, targets: tuple[str, ...]) -> Callable[[], str]:
    """The run's correlation summary for these probe targets, as the run's own report tabulates it."""

    def render() -> str:
        summary = pd.read_csv(run_folder(env) / "correlation_summary.csv")
        rows = summary[summary["target"].isin(targets)]
        return "\n".join(summary_table(rows, "target"))

    return render


def label_variance_kept_table() -> str:
    kept = pd.read_csv(run_folder("base") / "label_variance_kept.csv")
    table = kept.pivot(index="dataset", columns="k", values="label_variance_kept").sort_index()
    lines = ["| dataset | " + " | ".join(f"k = {k}" for k in table.columns) + " |", "|---|" + "---|" * len(table.columns)]
    for dataset, values in table.iterrows():
        lines.append(f"| {dataset} | " + " | ".join(f"{value:.2f}" for value in values) + " |")
    return "\n".join(lines)


def results(name: str) -> dict:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def _row(cells: list) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def scale_table() -> str:
    """docs/scaling.md's cost of one pair per width, from benchmarks/scale_benchmark.py's results."""
    columns = ["d", "paper models (blocks)", "forward", "statistics", "overhead", "floor", "eigen", "scores"]
    columns += ["MB / layer", "pair: forward + statistics", "pair: eigen + scores", "pair: disk", "12 datasets"]
    lines = [_row(columns), "|" + "---|" * len(columns)]
    scale = results("scale_benchmark.json")
    for width in scale["widths"]:
        per_layer, pair = width["per_layer"], width["pair"]
        lines.append(
            _row(
                [
                    width["hidden_size"],
                    f"{', '.join(width['models'])} ({width['blocks_real']})",
                    f"{per_layer['forward_s_per_1k_tokens']:.2f}",
                    f"{per_layer['statistics_s_per_1k_tokens']:.2f}",
                    f"{width['statistics_overhead']:.2f}x",
                    f"{width['statistics_overhead_floor']:.2f}x",
                    f"{per_layer['eigen_s']:.1f}",
                    f"{per_layer['scores_s']:.1f}",
                    f"{per_layer['bytes_written'] / 1e6:.0f}",
                    f"{pair['forward_and_statistics_s'] / 3600:.1f} h",
                    f"{pair['eigen_and_scores_s'] / 60:.1f} min",
                    f"{pair['bytes_written'] / 1e9:.1f} GB",
                    f"{width['model_x_12_datasets']['total_s'] / 3600:.0f} h",
                ]
            )
        )
    grid = scale["grid"]["grid"]
    peak = max(width["per_layer"]["peak_rss_mb"] for width in scale["widths"])
    lines += [
        "",
        f"The whole grid: {grid['total_s'] / 3600:.0f} hours and {grid['bytes_written'] / 1e9:.0f} GB on this CPU. "
        f"The benchmark ran {scale['wall_s'] / 60:.0f} minutes; its peak resident memory at any width was "
        f"{peak / 1e3:.1f} GB.",
    ]
    return "\n".join(lines)


PARITY_FRACTIONS = ("0.05", "0.25", "0.50", "0.75", "0.95")
# docs/parity.md shows two of the run's datasets; the float32 spread is over all of them.
PARITY_DATASETS = ("newsgroups20", "rotten_tomatoes")


def parity_table() -> str:
    """docs/parity.md's scores of both procedures, from benchmarks/released_code_parity.py's results."""
    records = results("released_code_parity.json")["tables"]["released_vs_paper"]
    lines = [
        _row(["dataset", "layer", "score", *(f"f = {float(f):.2f}" for f in PARITY_FRACTIONS)]),
        "|---|---|---|---|---|---|---|---|",
    ]
    shown = [record for record in records if record["dataset"] in PARITY_DATASETS]
    for record in sorted(shown, key=lambda record: (record["dataset"], record["layer"])):
        scores = [record["ntps"][fraction] for fraction in PARITY_FRACTIONS]
        lines.append(_row([record["dataset"], record["layer"], record["label"], *(f"{score:.3f}" for score in scores)]))
    return "\n".join(lines)


def spread_table() -> str:
    """docs/parity.md's float32 spread of the released procedure at five fractions."""
    records = results("released_code_parity.json")["tables"]["float32_spread"]
    columns = ("ascending_blas", "ascending_nudge", "top_first_blas", "top_first_nudge")
    lines = [_row(["f", "eigh's order (released), blas", "released, nudge", "top first, blas", "top first, nudge"])]
    lines.append("|---|---|---|---|---|")
    for record in records:
        if f"{record['k_fraction']:.2f}" in {f"{float(f):.2f}" for f in PARITY_FRACTIONS}:
            lines.append(_row([f"{record['k_fraction']:.2f}", *(f"{record[column]:.3f}" for column in columns)]))
    return "\n".join(lines)


def benchmark_lines(measure: str, results_file: str = "ntps_benchmark.json") -> Callable[[], str]:
    """A measure's output as benchmarks/ntps_benchmark.py printed it, under the command that ran it."""

    def render() -> str:
        entry = results(results_file)["measures"][measure]
        return "\n".join(["```text", f"$ {entry['command']}", *entry["lines"], "```"])

    return render


def forward_precision_lines() -> str:
    """benchmarks/forward_precision.py's comparison of a bfloat16 and a float32 run, as it printed it."""
    return "\n".join(["```text", *results("forward_precision.json")["lines"], "```"])


def default_run_time_table() -> str:
    """benchmarks/default_run_time.py's default runs from fresh worktrees, numbered in the order they ran
    (the commits are in the results file, not in the documentation), each with its stage times."""
    runs = results("default_run_time.json")["runs"]
    stages = sorted({stage for run in runs for stage in run["stage_seconds"]})
    lines = [_row(["run", "forward pass", "minutes", "over run 1", *stages]), "|" + "---|" * (len(stages) + 4)]
    for number, run in enumerate(runs, start=1):
        seconds = [f"{run['stage_seconds'].get(stage, float('nan')):.0f}" for stage in stages]
        ratio = f"{run['seconds'] / runs[0]['seconds']:.2f}"
        lines.append(_row([number, run["dtype"], f"{run['seconds'] / 60:.1f}", ratio, *seconds]))
    return "\n".join(lines)


def regret_table() -> str:
    """docs/study.md's comparison of layer selectors over the study's tasks."""
    regret = pd.read_csv(run_folder("study") / "selector_regret.csv")
    columns = ["selector", "tasks", "mean regret [95 % interval]", "worst task", "noise floor"]
    lines = [_row(columns), "|" + "---|" * len(columns)]
    for row in regret.itertuples():
        interval = f"{row.mean_regret:.3f} [{row.low:.3f}, {row.high:.3f}]"
        lines.append(_row([row.selector, row.tasks, interval, f"{row.worst_regret:.3f}", f"{row.noise_floor:.3f}"]))
    return "\n".join(lines)


def ntps_rise_table() -> str:
    """docs/lora.md's share of the tasks and k where NTPS rose after LoRA, per layer and variant."""
    rise = pd.read_csv(run_folder("study") / "ntps_rise_by_layer.csv")
    table = rise.pivot(index="layer", columns="variant", values="share_rose").sort_index()
    lines = [_row(["layer", *table.columns]), "|---|" + "---|" * len(table.columns)]
    lines += [_row([layer, *(f"{value:.2f}" for value in values)]) for layer, values in table.iterrows()]
    return "\n".join(lines)


def lora_tasks_table() -> str:
    """docs/lora.md's per-task results of the LoRA study."""
    gains = pd.read_csv(run_folder("study") / "lora_gains.csv")
    columns = ["task", "probe, final block", "best layer", "probe there", "LoRA", "gain over final block"]
    columns += ["gain over best layer", "levelled off at step", "minutes"]
    lines = [_row(columns), "|" + "---|" * len(columns)]
    for row in gains.itertuples():
        stopped = f", stopped at {row.steps}" if row.steps < row.planned_steps else ""
        plateau = (
            f"{row.steps_to_plateau}{stopped} of {row.planned_steps}" if row.plateau_reached else f"no ({row.steps} steps)"
        )
        plateau = plateau if row.learned else f"{plateau}, not above chance"
        lines.append(
            _row(
                [
                    row.dataset,
                    f"{row.probe_test_accuracy:.3f}",
                    row.best_layer,
                    f"{row.best_layer_probe_accuracy:.3f}",
                    f"{row.lora_test_accuracy:.3f}",
                    f"{row.accuracy_gain:+.3f}",
                    f"{row.gain_over_best_layer:+.3f}",
                    plateau,
                    f"{row.training_seconds / 60:.1f}",
                ]
            )
        )
    lines += [
        "",
        f"LoRA beat the probe at the best layer on {int((gains['gain_over_best_layer'] > 0).sum())} of {len(gains)} "
        f"tasks and the final block's on {int((gains['accuracy_gain'] > 0).sum())}; its validation accuracy levelled "
        f"off on {int(gains['plateau_reached'].sum())} and beat the majority class by two standard errors on "
        f"{int(gains['learned'].sum())}. Training took "
        f"{gains['training_seconds'].sum() / 60:.0f} minutes in all.",
        "",
        lora_run_time_line(),
    ]
    return "\n".join(lines)


def lora_run_time_line() -> str:
    """The LoRA study's wall time and its stages', from the MLflow record export --lora copied."""
    stages = pd.read_csv(run_folder("study") / "lora_run_time.csv").set_index("stage")["seconds"] / 60
    whole = stages.pop("whole run")
    listed = ", ".join(f"{stage} {minutes:.1f}" for stage, minutes in stages.sort_values(ascending=False).items())
    return f"The `lora` run took {whole:.0f} minutes from start to end; its stages, in minutes: {listed}."


def _rate(rate: float) -> str:
    """A learning rate as 5e-4."""
    mantissa, exponent = f"{rate:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def lora_learning_rate_table() -> str:
    """docs/lora.md's learning-rate sweep: per task and peak learning rate, the last epoch's mean
    validation accuracy and whether it levelled off, from benchmarks/lora_learning_rate.py's results."""
    sweep = results("lora_learning_rate.json")
    runs = pd.DataFrame(sweep["runs"])
    rates = sorted(runs["learning_rate"].unique())
    chosen = sweep["chosen"]
    lines = [_row(["task", "training / validation texts", *(f"lr {_rate(rate)}" for rate in rates), "highest"])]
    lines.append("|---|---|" + "---|" * (len(rates) + 1))
    for task, rows in runs.groupby("dataset", sort=True):
        by_rate = rows.set_index("learning_rate")
        cells = []
        for rate in rates:
            if rate not in by_rate.index:
                cells.append("")
                continue
            run = by_rate.loc[rate]
            levelled = "" if run["plateau_reached"] else " (rising)"
            cells.append(f"{run['last_epoch_accuracy']:.3f} ± {run['standard_error']:.3f}{levelled}")
        texts = f"{rows['training_texts'].iloc[0]} / {rows['validation_texts'].iloc[0]}"
        lines.append(_row([task, texts, *cells, _rate(chosen["per_task"][task])]))
    ranks = ", ".join(f"{_rate(float(rate))} {rank:.1f}" for rate, rank in chosen["mean_rank"].items())
    lines += [
        "",
        f"Mean rank over the {len(chosen['complete_tasks'])} tasks that ran every learning rate (1 = highest "
        f"accuracy): {ranks}. {len(runs)} fine-tunes took {runs['seconds'].sum() / 60:.0f} minutes, with LoRA "
        f"dropout {sweep['configuration']['lora']['dropout']:g}.",
    ]
    if chosen.get("one_standard_error") is not None:
        lines[-1] += (
            f" The smallest rate within one standard error of the highest on each of them: "
            f"{_rate(chosen['one_standard_error'])}."
        )
    return "\n".join(lines)


def lora_correlation_table() -> str:
    """docs/lora.md's rank correlations of each score with LoRA's gains over the study's tasks."""
    summary = pd.read_csv(run_folder("study") / "lora_gain_correlations.csv")
    return "\n".join(summary_table(summary, "target"))


def ntps_change_summary() -> str:
    """docs/lora.md's Table 2 over the study: in how many tasks NTPS rose after LoRA, per variant."""
    change = pd.read_csv(run_folder("study") / "ntps_change_after_lora.csv")
    columns = ["variant", "rose at the configuration", "median change (%)", "mean share of the grid that rose"]
    lines = [_row(columns), "|" + "---|" * len(columns)]
    for variant, rows in change.groupby("variant", sort=True):
        rose = int(ntps_rose(rows["ntps_before"], rows["ntps_after"]).sum())
        lines.append(
            _row(
                [
                    variant,
                    f"{rose} of {len(rows)}",
                    f"{rows['relative_change_percent'].median():+.1f}",
                    f"{rows['grid_share_increased'].mean():.2f}",
                ]
            )
        )
    return "\n".join(lines)


def logistic_check_table(env: str) -> Callable[[], str]:
    """The ridge probe's held-out accuracy beside the logistic probe's, at the best layer and the final
    block of each dataset of a run, and how far apart they are."""

    def render() -> str:
        checks = pd.read_csv(run_folder(env) / "logistic_checks.csv")
        columns = ["dataset", "layer", "which", "ridge, leave-one-out", "ridge, held out", "logistic, held out"]
        lines = [_row(columns), "|" + "---|" * len(columns)]
        for row in checks.itertuples():
            which = " and ".join(name for name, flag in (("best", row.best_layer), ("final block", row.final_block)) if flag)
            converged = "" if row.logistic_converged else " (not converged)"
            lines.append(
                _row(
                    [
                        row.dataset,
                        row.hidden_state,
                        which,
                        f"{row.loo_accuracy:.3f}",
                        f"{row.test_accuracy:.3f}",
                        f"{row.logistic_test_accuracy:.3f}{converged}",
                    ]
                )
            )
        difference = checks["test_accuracy"] - checks["logistic_test_accuracy"]
        lines += [
            "",
            f"Over these {len(checks)} (dataset, layer) pairs the ridge probe's held-out accuracy minus the logistic "
            f"probe's is {difference.mean():+.3f} on average (from {difference.min():+.3f} to {difference.max():+.3f}); "
            f"their correlation is {checks['test_accuracy'].corr(checks['logistic_test_accuracy']):.2f}.",
        ]
        return "\n".join(lines)

    return render


RENDERERS: dict[str, Callable[[], str]] = {
    "scores-logistic-check-default": logistic_check_table("base"),
    "study-logistic-check": logistic_check_table("study"),
    "lora-study-tasks": lora_tasks_table,
    "lora-learning-rate": lora_learning_rate_table,
    "lora-study-correlations": lora_correlation_table,
    "lora-study-ntps-change": ntps_change_summary,
    "lora-study-ntps-rise-by-layer": ntps_rise_table,
    "study-selector-regret": regret_table,
    **{
        f"benchmarks-{measure}": benchmark_lines(measure)
        for measure in ("statistics", "sweep", "scores", "eigen", "lora", "layer-probes")
    },
    "benchmarks-product-precision": benchmark_lines("product-precision"),
    "benchmarks-statistics-bfloat16": benchmark_lines("statistics", "ntps_benchmark_bfloat16.json"),
    "benchmarks-forward-precision": forward_precision_lines,
    "benchmarks-default-run-time": default_run_time_table,
    "scaling-pair-cost": scale_table,
    "parity-released-vs-paper": parity_table,
    "parity-float32-spread": spread_table,
    "study-default-correlations": correlation_table("base", ("ols_training_mse", "logistic_test_accuracy")),
    "study-tasks-accuracy": correlation_table("study", ("logistic_test_accuracy",)),
    "study-tasks-mse": correlation_table("study", ("ols_test_mse",)),
    "scores-label-variance-kept-default": label_variance_kept_table,
}


def rendered_page(text: str) -> tuple[str, list[str]]:
    """The page with every table that has a renderer and results rendered from them, and the ids of the
    marked tables that have no renderer or no results file yet."""
    unrendered = []

    def replace(match: re.Match) -> str:
        table_id = match.group(2)
        try:
            table = RENDERERS[table_id]()
        except (KeyError, FileNotFoundError):
            unrendered.append(table_id)
            return match.group(0)
        return f"{match.group(1)}{table}\n{match.group(4)}"

    return MARKED.sub(replace, text), unrendered


def render(check: bool) -> int:
    differing = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        new_text, _ = rendered_page(text)
        if new_text != text:
            differing.append(page)
            if not check:
                page.write_text(new_text, encoding="utf-8")
    for page in differing:
        logger.info("%s %s", "differs from its results:" if check else "rendered", page.relative_to(REPOSITORY))
    return 1 if check and differing else 0


def export(env: str) -> None:
    """Writes the tables the pages need from the latest outputs of `kedro run --env <env> --pipelines=ntps`,
    after checking that those outputs are that environment's (its run.datasets, every one)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(REPOSITORY)
    with KedroSession.create(project_path=REPOSITORY, env=None if env == "base" else env) as session:
        context = session.load_context()
        expected = sorted(context.params["run"]["datasets"])
        summary = context.catalog.load("correlation_summary")
        excess = context.catalog.load("excess_loss_table")
        regret = context.catalog.load("selector_regret")
        layer_probes = context.catalog.load("layer_probe_table")
    found = sorted(set(excess["dataset"]))
    if found != expected or sorted(set(layer_probes["dataset"])) != expected:
        raise SystemExit(f"the latest outputs cover {found}, not the {env} environment's {expected}: rerun it first")
    folder = run_folder(env)
    folder.mkdir(parents=True, exist_ok=True)
    summary.to_csv(folder / "correlation_summary.csv", index=False, float_format="%.6g")
    regret.to_csv(folder / "selector_regret.csv", index=False, float_format="%.6g")
    checked = layer_probes.dropna(subset=["logistic_test_accuracy"])
    checked = checked.assign(final_block=checked["hidden_state"] == layer_probes["hidden_state"].max())
    columns = ["dataset", "hidden_state", "best_layer", "final_block", "loo_accuracy", "test_accuracy"]
    checked[[*columns, "logistic_test_accuracy", "logistic_converged"]].sort_values(["dataset", "hidden_state"]).to_csv(
        folder / "logistic_checks.csv", index=False, float_format="%.6g"
    )
    if env == "base":
        penultimate = excess[excess["layer"] == excess["layer"].max() - 1]
        d = int(penultimate["k"].max())
        ks = [round(fraction * d) for fraction in KEPT_FRACTIONS]
        kept = penultimate[penultimate["k"].isin(ks)][["dataset", "layer", "k", "label_variance_kept"]]
        kept.sort_values(["dataset", "k"]).to_csv(folder / "label_variance_kept.csv", index=False, float_format="%.6g")
    logger.info("wrote %s", folder.relative_to(REPOSITORY))


def rise_by_layer(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per variant and layer, over the tasks LoRA ran on and the paper's k grid: the share of
    (task, k) where NTPS rose after LoRA."""
    keys = ["model", "dataset", "variant", "layer", "k"]
    paired = after.merge(before, on=keys, suffixes=("_after", "_before"))
    paired = paired[paired["on_paper_grid_before"]]
    paired = paired.assign(rose=ntps_rose(paired["ntps_before"], paired["ntps_after"]))
    return paired.groupby(["variant", "layer"], as_index=False).agg(
        share_rose=("rose", "mean"), configurations=("rose", "size")
    )


def lora_run_time(tracking_uri: str) -> pd.DataFrame:
    """The latest finished MLflow run of the `lora` pipeline: the seconds of each stage (the ResourceUsageHook's
    stage_seconds metrics) and, as stage "whole run", the run's wall time from start to end."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(
        experiment_names=["ntps"],
        filter_string="tags.`mlflow.runName` = 'lora' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if runs.empty:
        raise SystemExit(f"no finished MLflow run of the lora pipeline in {tracking_uri}: run it first")
    run = runs.iloc[0]
    prefix = "metrics.stage_seconds."
    stages = {column.removeprefix(prefix): run[column] for column in sorted(runs.columns) if column.startswith(prefix)}
    stages["whole run"] = (run["end_time"] - run["start_time"]).total_seconds()
    return pd.DataFrame({"stage": list(stages), "seconds": list(stages.values())}).dropna()


def export_lora(env: str) -> None:
    """Writes the LoRA study's tables from the latest outputs of `kedro run --env <env> --pipelines=lora`."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(REPOSITORY)
    with KedroSession.create(project_path=REPOSITORY, env=None if env == "base" else env) as session:
        catalog = session.load_context().catalog
        tables = {name: catalog.load(name) for name in ("lora_gains", "lora_gain_correlations", "ntps_change_after_lora")}
        before = catalog.load("ntps_table")
        after = pd.concat(
            [
                catalog.load(f"{model}.{dataset}.after_lora.ntps_table")
                for model, dataset in tables["lora_gains"][["model", "dataset"]].itertuples(index=False)
            ],
            ignore_index=True,
        )
    tables["ntps_rise_by_layer"] = rise_by_layer(before, after)
    tables["lora_run_time"] = lora_run_time(f"sqlite:///{REPOSITORY / 'mlflow.db'}")
    folder = run_folder(env)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False, float_format="%.6g")
    logger.info("wrote the LoRA tables of %d tasks to %s", len(tables["lora_gains"]), folder.relative_to(REPOSITORY))


def main(arguments: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    export_command = commands.add_parser("export", help="copy a run's results into benchmarks/results/")
    export_command.add_argument("--env", default="base", help="the Kedro environment that ran (base: the default run)")
    export_command.add_argument("--lora", action="store_true", help="the LoRA study's tables (after --pipelines=lora)")
    render_command = commands.add_parser("render", help="render the pages' measured tables from benchmarks/results/")
    render_command.add_argument("--check", action="store_true", help="change nothing; exit 1 where a page differs")
    options = parser.parse_args(arguments)
    if options.command == "export":
        (export_lora if options.lora else export)(options.env)
        return 0
    return render(options.check)


if __name__ == "__main__":
    sys.exit(main())

"""The run report: per model x dataset, which layer serves the task, how well, how sure, and what each
score would have chosen; from the training texts alone, with the held-out texts only checking.

Every layer choice here is made on the training texts: the probe's by its leave-one-out accuracy, each
NTPS variant's by its mean over the paper's k grid (k is not searched: the grid is fixed), the
per-layer selectors' (LogME, H-score, shrunk H-score, the label-free effective rank) by their value, and two
fixed rules (the final block, the middle layer). What a choice costs is read on the held-out texts:
the held-out accuracy of the ridge probe at the chosen layer against that at the probe's own choice
(cost) and against the best held-out accuracy of any layer (regret, which favours hindsight: the
best of many noisy held-out accuracies is biased upward).
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

from ntps.reports.plots import plt

NTPS_SELECTORS = {"paper": "NTPS paper", "signal": "NTPS signal", "label_variance_kept": "label_variance_kept"}
LAYER_SELECTORS = {
    "logme": "LogME",
    "h_score": "H-score",
    "h_score_shrunk": "shrunk H-score",
    "effective_rank": "effective rank (label-free)",
}
FIXED_RULES = {"final_block": "always the final block", "middle_layer": "always the middle layer"}
PROBE = "ridge probe (leave-one-out)"
# A score is above its null at a (layer, k) where its one-sided p-value is at most this.
NULL_LEVEL = 0.05


def ntps_by_layer(ntps_table: pd.DataFrame) -> pd.DataFrame:
    """Per model, dataset, variant and layer, over the paper's k grid: the mean score, the mean of its
    null's mean and sd (NaN where the variant has no null there) and the share of the grid where the
    score is above its null (p <= NULL_LEVEL)."""
    grid = ntps_table[ntps_table["on_paper_grid"] & ntps_table["variant"].isin(list(NTPS_SELECTORS) + ["released_code"])]
    grid = grid.assign(above_null=(grid["null_p_value"] <= NULL_LEVEL).where(grid["null_p_value"].notna()))
    return (
        grid.groupby(["model", "dataset", "variant", "layer"], sort=True)
        .agg(
            score=("ntps", "mean"),
            null_mean=("null_mean", "mean"),
            null_sd=("null_sd", "mean"),
            above_null=("above_null", "mean"),
        )
        .reset_index()
        .rename(columns={"layer": "hidden_state"})
    )


def selector_values(layer_probes: pd.DataFrame, ntps_layers: pd.DataFrame) -> pd.DataFrame:
    """Long table model, dataset, selector, hidden_state, value: what each selector maximizes."""
    frames = [
        layer_probes.assign(selector=PROBE, value=layer_probes["loo_accuracy"]),
        *(layer_probes.assign(selector=name, value=layer_probes[column]) for column, name in LAYER_SELECTORS.items()),
    ]
    for variant, name in NTPS_SELECTORS.items():
        rows = ntps_layers[ntps_layers["variant"] == variant]
        frames.append(rows.assign(selector=name, value=rows["score"]))
    columns = ["model", "dataset", "selector", "hidden_state", "value"]
    return pd.concat([frame[columns] for frame in frames], ignore_index=True)


def layer_choices(layer_probes: pd.DataFrame, ntps_layers: pd.DataFrame) -> pd.DataFrame:
    """Per model, dataset and selector: the hidden state chosen on the training texts, the ridge probe's
    held-out accuracy there, its cost against the probe's own choice and its regret against the best
    held-out accuracy of any layer (both in accuracy points, positive: worse)."""
    values = selector_values(layer_probes, ntps_layers).dropna(subset=["value"])
    # Only the hidden states the probes saw (a run may pool fewer layers than it scores) can be checked.
    probed = layer_probes[["model", "dataset", "hidden_state"]]
    values = values.merge(probed, on=["model", "dataset", "hidden_state"], how="inner")
    chosen = values.loc[values.groupby(["model", "dataset", "selector"], sort=False)["value"].idxmax()]
    rows = [chosen[["model", "dataset", "selector", "hidden_state"]]]
    for (model, dataset), pair in layer_probes.groupby(["model", "dataset"], sort=False):
        layers = np.sort(pair["hidden_state"].to_numpy())
        for rule, layer in (("final_block", layers[-1]), ("middle_layer", layers[len(layers) // 2])):
            rows.append(
                pd.DataFrame([{"model": model, "dataset": dataset, "selector": FIXED_RULES[rule], "hidden_state": layer}])
            )
    choices = pd.concat(rows, ignore_index=True)
    probes = layer_probes.set_index(["model", "dataset", "hidden_state"])
    choices["test_accuracy"] = [
        probes.loc[(m, d, h), "test_accuracy"]
        for m, d, h in choices[["model", "dataset", "hidden_state"]].itertuples(index=False)
    ]
    best = layer_probes[layer_probes["best_layer"]].set_index(["model", "dataset"])["test_accuracy"]
    hindsight = layer_probes.groupby(["model", "dataset"])["test_accuracy"].max()
    pairs = pd.MultiIndex.from_frame(choices[["model", "dataset"]])
    choices["cost"] = best.reindex(pairs).to_numpy() - choices["test_accuracy"].to_numpy()
    choices["regret"] = hindsight.reindex(pairs).to_numpy() - choices["test_accuracy"].to_numpy()
    return choices


def split_half_regret(layer_probes: pd.DataFrame, choices: pd.DataFrame) -> pd.DataFrame:
    """Per pair and selector, the regret measured on held-out texts the hindsight choice did not see:
    the best layer in hindsight is chosen on the even held-out texts and both it and the selector's
    layer are scored on the odd ones, and the other way round; the two regrets are averaged. Also
    per pair, hindsight_optimism: how much the hindsight layer's accuracy on the half that chose it
    exceeds its accuracy on the other half, the upward bias of taking the best of many noisy held-out
    accuracies (the noise floor a regret must clear)."""
    rows = []
    for (model, dataset), pair in layer_probes.groupby(["model", "dataset"], sort=True):
        accuracy = pair.set_index("hidden_state")[["test_accuracy_even", "test_accuracy_odd"]]
        chosen_on = {half: accuracy[half].idxmax() for half in accuracy.columns}
        other = {"test_accuracy_even": "test_accuracy_odd", "test_accuracy_odd": "test_accuracy_even"}
        optimism = np.mean(
            [accuracy.loc[chosen_on[half], half] - accuracy.loc[chosen_on[half], other[half]] for half in other]
        )
        for row in choices[(choices["model"] == model) & (choices["dataset"] == dataset)].itertuples():
            regret = np.mean(
                [accuracy.loc[chosen_on[half], other[half]] - accuracy.loc[row.hidden_state, other[half]] for half in other]
            )
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "selector": row.selector,
                    "regret": regret,
                    "hindsight_optimism": optimism,
                }
            )
    return pd.DataFrame(rows)


def regret_summary(regrets: pd.DataFrame, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per model and selector over its tasks: the mean regret with a bootstrap 95 % interval (tasks
    resampled), the worst regret, and the mean hindsight optimism (the noise floor)."""
    rows = []
    rng = np.random.default_rng(seed)
    columns = ["model", "selector", "tasks", "mean_regret", "low", "high", "worst_regret", "noise_floor"]
    for (model, selector), group in regrets.groupby(["model", "selector"], sort=False):
        values = group["regret"].to_numpy()
        means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
        rows.append(
            {
                "model": model,
                "selector": selector,
                "tasks": len(values),
                "mean_regret": values.mean(),
                "low": np.quantile(means, 0.025),
                "high": np.quantile(means, 0.975),
                "worst_regret": values.max(),
                "noise_floor": group["hindsight_optimism"].mean(),
            }
        )
    return pd.DataFrame(rows, columns=columns).sort_values(["model", "mean_regret"]).reset_index(drop=True)


def _accuracy(value: float, low: float, high: float) -> str:
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def lora_verdict(gain: pd.Series) -> str:
    """One sentence on what LoRA added for one pair (a row of lora_study.accuracy_gains)."""
    steps, planned = int(gain["steps"]), int(gain["planned_steps"])
    stopped = f"; training stopped at step {steps} of the {planned} planned" if steps < planned else f" of {steps}"
    curve = (
        f"its validation accuracy levelled off by step {int(gain['steps_to_plateau'])}{stopped}"
        if gain["plateau_reached"]
        else f"its validation accuracy had not levelled off after {int(gain['steps'])} steps, so more training may help"
    )
    if not gain["learned"]:
        chance = gain["chance_accuracy"]
        margin = gain["validation_accuracy"] - chance
        why = (
            "it did not fit its training texts either, so it diverged or collapsed onto one class: a lower "
            "`lora.learning_rate` may help"
            if gain["lora_train_accuracy"] - chance <= margin
            else "it fits its training texts better, but that does not carry to new texts"
        )
        return (
            f"LoRA is not clearly above chance: its validation accuracy, {gain['validation_accuracy']:.2f}, is within two "
            f"standard errors of always answering the majority class ({chance:.2f}), and its training accuracy is "
            f"{gain['lora_train_accuracy']:.2f}: {why}; its held-out {gain['lora_test_accuracy']:.2f} is "
            f"{gain['gain_over_best_layer']:+.2f} over the logistic probe at layer {int(gain['best_layer'])}."
        )
    worth = "worth it" if gain["gain_over_best_layer"] > 0 else "not worth it here"
    return (
        f"LoRA reaches {gain['lora_test_accuracy']:.2f} held out, {gain['gain_over_best_layer']:+.2f} over the logistic "
        f"probe at layer {int(gain['best_layer'])} and {gain['accuracy_gain']:+.2f} over the final block's "
        f"({worth}); {curve}."
    )


def pair_verdict(pair_probes: pd.DataFrame, pair_choices: pd.DataFrame, pair_ntps: pd.DataFrame) -> list[str]:
    """The sentences that answer, for one pair, which layer, how well, how sure, and what the scores
    would have chosen."""
    best = pair_probes[pair_probes["best_layer"]].iloc[0]
    final = pair_probes.sort_values("hidden_state").iloc[-1]
    embeddings = pair_probes.sort_values("hidden_state").iloc[0]
    chance = best["majority_rate"]
    layer = int(best["hidden_state"])
    sentences = []
    if best["loo_low"] <= chance:
        sentences.append(
            f"No layer is clearly above chance: the best, layer {layer}, reaches "
            f"{_accuracy(best['loo_accuracy'], best['loo_low'], best['loo_high'])} cross-validated against chance "
            f"(the majority class) {chance:.2f}."
        )
    else:
        sentences.append(
            f"Layer {layer} is best: {_accuracy(best['loo_accuracy'], best['loo_low'], best['loo_high'])} cross-validated, "
            f"{best['test_accuracy']:.2f} held out; the final block (layer {int(final['hidden_state'])}) gives "
            f"{final['test_accuracy']:.2f} held out and the embeddings {embeddings['test_accuracy']:.2f}; "
            f"chance is {chance:.2f}."
        )
    checked = pair_probes.dropna(subset=["logistic_test_accuracy"]).set_index("hidden_state")["logistic_test_accuracy"]
    if layer in checked.index and int(final["hidden_state"]) in checked.index:
        sentences.append(
            f"A logistic probe (the paper's) gives {checked[layer]:.2f} held out at layer {layer} and "
            f"{checked[int(final['hidden_state'])]:.2f} at the final block."
        )
    for selector in (*NTPS_SELECTORS.values(), *LAYER_SELECTORS.values()):
        row = pair_choices[pair_choices["selector"] == selector]
        if row.empty:
            continue
        row = row.iloc[0]
        worse = (
            "as good"
            if abs(row["cost"]) < 5e-3
            else (f"{row['cost']:.2f} worse" if row["cost"] > 0 else f"{-row['cost']:.2f} better")
        )
        sentences.append(f"{selector} would pick layer {int(row['hidden_state'])}, {worse} held out.")
    for variant in ("signal", "label_variance_kept"):
        shares = pair_ntps.loc[pair_ntps["variant"] == variant, "above_null"].dropna()
        if len(shares):
            sentences.append(
                f"NTPS {variant} is above its shuffled-label null on {100 * shares.mean():.0f} % of the (layer, k) grid."
            )
    return sentences


def model_ranking(layer_probes: pd.DataFrame, ntps_layers: pd.DataFrame) -> pd.DataFrame:
    """Per dataset with several models: each model's best cross-validated accuracy (at its own chosen
    layer) and its best NTPS label_variance_kept over layers, ranked."""
    best = layer_probes[layer_probes["best_layer"]][
        ["model", "dataset", "hidden_state", "loo_accuracy", "loo_low", "loo_high", "test_accuracy"]
    ]
    kept = (
        ntps_layers[ntps_layers["variant"] == "label_variance_kept"]
        .groupby(["model", "dataset"])["score"]
        .max()
        .rename("best_label_variance_kept")
    )
    table = best.merge(kept.reset_index(), on=["model", "dataset"], how="left")
    table = table[table.groupby("dataset")["model"].transform("nunique") > 1]
    table["probe_rank"] = table.groupby("dataset")["loo_accuracy"].rank(ascending=False, method="min")
    table["ntps_rank"] = table.groupby("dataset")["best_label_variance_kept"].rank(ascending=False, method="min")
    return table.sort_values(["dataset", "probe_rank"]).reset_index(drop=True)


def layer_figure(pair_probes: pd.DataFrame, pair_ntps: pd.DataFrame, title: str) -> plt.Figure:
    """Left: the ridge probe's leave-one-out accuracy with its interval band, its held-out accuracy
    and chance, per layer. Right: each NTPS variant's mean over the paper's k grid per layer, with its
    shuffled-label null's mean plus and minus two sds where it has one."""
    pair_probes = pair_probes.sort_values("hidden_state")
    layers = pair_probes["hidden_state"].to_numpy()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    left.fill_between(
        layers, pair_probes["loo_low"], pair_probes["loo_high"], color="tab:blue", alpha=0.2, label="95 % interval"
    )
    left.plot(layers, pair_probes["loo_accuracy"], color="tab:blue", label="leave-one-out (training texts)")
    left.plot(layers, pair_probes["test_accuracy"], color="tab:orange", linestyle="--", label="held out")
    left.axhline(pair_probes["majority_rate"].iloc[0], color="grey", linestyle=":", label="chance (majority class)")
    best = pair_probes[pair_probes["best_layer"]]["hidden_state"]
    left.axvline(best.iloc[0], color="tab:blue", linewidth=0.8, alpha=0.6)
    left.set(xlabel="layer (0 = embeddings)", ylabel="accuracy", title=f"{title}: ridge probe per layer")
    left.legend(fontsize=7, loc="lower right")
    for (variant, rows), color in zip(
        pair_ntps.groupby("variant", sort=True), ("tab:green", "tab:purple", "tab:red", "tab:brown")
    ):
        rows = rows.sort_values("hidden_state")
        right.plot(rows["hidden_state"], rows["score"], color=color, label=variant)
        if rows["null_mean"].notna().any():
            low, high = rows["null_mean"] - 2 * rows["null_sd"], rows["null_mean"] + 2 * rows["null_sd"]
            right.fill_between(rows["hidden_state"], low, high, color=color, alpha=0.15)
    right.set(
        xlabel="layer (0 = embeddings)",
        ylabel="mean over the paper's k grid",
        title="NTPS and its shuffled-label null (band)",
    )
    if pair_ntps.empty:
        right.text(0.5, 0.5, "no NTPS scores for this pair", ha="center", va="center", transform=right.transAxes)
    else:
        right.legend(fontsize=7)
    figure.tight_layout()
    return figure


def figure_data_uri(figure: plt.Figure) -> str:
    """The figure as an embedded PNG (a data: URI), so that the HTML needs no other file."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_table(table: pd.DataFrame) -> list[str]:
    """The table as markdown lines, floats to three decimals."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return lines


def _html_table(table: pd.DataFrame) -> str:
    return table.to_html(index=False, float_format=lambda value: f"{value:.3f}", border=0, classes="table")


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; color: #222; line-height: 1.45 }
h1 { font-size: 1.6em } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em }
.table { border-collapse: collapse; font-size: .85em; margin: .5em 0 }
.table th, .table td { padding: .2em .6em; border-bottom: 1px solid #eee; text-align: right }
.verdict li { margin: .2em 0 } img { max-width: 100% }
"""


# Selectors are compared across tasks once a model has at least this many.
MIN_TASKS_FOR_REGRET = 3


LORA_COLUMNS = [
    "model",
    "dataset",
    "probe_test_accuracy",
    "best_layer",
    "best_layer_probe_accuracy",
    "lora_test_accuracy",
    "accuracy_gain",
    "gain_over_best_layer",
    "learned",
    "plateau_reached",
    "steps_to_plateau",
    "steps",
    "planned_steps",
]


def run_report(
    layer_probes: pd.DataFrame,
    ntps_table: pd.DataFrame,
    cross_task: list[str] | None = None,
    lora_gains: pd.DataFrame | None = None,
    lora_lines: list[str] | None = None,
) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    """(HTML, markdown, layer choices, selector regret) of the run: verdicts first, then per pair the
    layer curves and the choices table, then which model serves each dataset best, then, across a
    model's tasks, which selector to trust (split-half regret), then, once LoRA has run
    (lora_gains, lora_study.accuracy_gains, and lora_lines, which scores predicted the gain), whether
    fine-tuning is worth it, then the cross-task summary."""
    ntps_layers = ntps_by_layer(ntps_table)
    choices = layer_choices(layer_probes, ntps_layers)
    html_parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>NTPS run report</title>",
        f"<style>{STYLE}</style></head><body>",
    ]
    html_parts.append("<h1>Which layer serves each task, how well, how sure</h1>")
    markdown = ["# Which layer serves each task, how well, how sure", ""]
    # Each pair's rows of the three tables, sliced once for its verdict and its section.
    pairs = {
        (model, dataset): (
            pair,
            ntps_layers[(ntps_layers["model"] == model) & (ntps_layers["dataset"] == dataset)],
            choices[(choices["model"] == model) & (choices["dataset"] == dataset)],
        )
        for (model, dataset), pair in layer_probes.groupby(["model", "dataset"], sort=True)
    }
    html_parts.append("<h2 id='verdicts'>Verdicts</h2>")
    markdown += ["## Verdicts", ""]
    for (model, dataset), (pair, pair_ntps, pair_choices) in pairs.items():
        sentences = pair_verdict(pair, pair_choices, pair_ntps)
        if lora_gains is not None:
            gain = lora_gains[(lora_gains["model"] == model) & (lora_gains["dataset"] == dataset)]
            sentences += [lora_verdict(row) for _, row in gain.iterrows()]
        html_parts.append(f"<h3>{html.escape(model)} / {html.escape(dataset)}</h3><ul class='verdict'>")
        html_parts += [f"<li>{html.escape(sentence)}</li>" for sentence in sentences]
        html_parts.append("</ul>")
        markdown += [f"### {model} / {dataset}", "", *(f"- {sentence}" for sentence in sentences), ""]
    for (model, dataset), (pair, pair_ntps, pair_choices) in pairs.items():
        anchor = f"{model}.{dataset}"
        shown = pair_choices[["selector", "hidden_state", "test_accuracy", "cost", "regret"]]
        html_parts.append(f"<h2 id='{html.escape(anchor)}' class='pair'>{html.escape(model)} / {html.escape(dataset)}</h2>")
        image = figure_data_uri(layer_figure(pair, pair_ntps, dataset))
        html_parts.append(f"<img alt='layer curves of {html.escape(anchor)}' src='{image}'>")
        html_parts.append(_html_table(shown))
        markdown += [f"## {model} / {dataset}", "", *markdown_table(shown), ""]
    ranking = model_ranking(layer_probes, ntps_layers)
    if not ranking.empty:
        html_parts += ["<h2 id='models'>Which model</h2>", _html_table(ranking)]
        markdown += ["## Which model", "", *markdown_table(ranking), ""]
    regrets = split_half_regret(layer_probes, choices)
    tasks = regrets.groupby("model")["dataset"].transform("nunique")
    summary = regret_summary(regrets[tasks >= MIN_TASKS_FOR_REGRET])
    if not summary.empty:
        intro = (
            "Held-out accuracy a selector's layer loses against the best layer in hindsight, chosen on one half of "
            "the held-out texts and measured on the other (both ways, averaged); mean over tasks with a bootstrap "
            "95 % interval, and the worst task. noise_floor: how much the hindsight choice's accuracy drops from "
            "the half that chose it to the other, the optimism of picking the best of many noisy accuracies."
        )
        html_parts += [
            "<h2 id='selectors'>Which selector to trust</h2>",
            f"<p>{html.escape(intro)}</p>",
            _html_table(summary),
        ]
        markdown += ["## Which selector to trust", "", intro, "", *markdown_table(summary), ""]
    if lora_gains is not None and not lora_gains.empty:
        intro = (
            "Held-out accuracy of LoRA against the logistic probe at the final block and at the best layer, on the "
            "same held-out texts, and whether LoRA's validation accuracy levelled off. Which scores ranked the tasks "
            "by the gain (3 or more tasks):"
        )
        shown = lora_gains[LORA_COLUMNS]
        lora_lines = lora_lines or ["fewer than 3 tasks per model: no ranking"]
        html_parts += [
            "<h2 id='lora'>Is fine-tuning worth it?</h2>",
            f"<p>{html.escape(intro)}</p>",
            _html_table(shown),
            "<ul>",
            *(f"<li>{html.escape(line)}</li>" for line in lora_lines),
            "</ul>",
        ]
        markdown += ["## Is fine-tuning worth it?", "", intro, "", *markdown_table(shown), ""]
        markdown += [f"- {line}" for line in lora_lines] + [""]
    if cross_task:
        html_parts += [
            "<h2 id='across-tasks'>Across tasks</h2><ul>",
            *(f"<li>{html.escape(line)}</li>" for line in cross_task),
            "</ul>",
        ]
        markdown += ["## Across tasks", "", *(f"- {line}" for line in cross_task), ""]
    html_parts.append("</body></html>")
    return "\n".join(html_parts), "\n".join(markdown) + "\n", choices, summary

"""Does NTPS rank datasets as the probes do? The tables behind the paper's Figure 2, with the
honest numbers next to the paper's, and LogME / H-score as peer baselines."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ntps.core.correlation import (
    bootstrap_interval,
    leave_one_dataset_out,
    permutation_p_value,
    permuted_best_r,
    select_best_configuration,
    spearman,
    target_permutations,
)
from ntps.core.errors import NtpsInputError
from ntps.core.ntps import scored_variants

logger = logging.getLogger(__name__)

# +1: a better representation should raise the target; -1: lower it.
TARGET_DIRECTIONS = {"ols_training_mse": -1, "logistic_train_accuracy": 1, "logistic_test_accuracy": 1}
PEER_SCORES = ("logme", "h_score")


def probe_targets(probe_metrics: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """Probe metrics of the hidden state the correlations use (settings["probe_hidden_state"],
    -1 = each model's last), one row per model x dataset."""
    wanted = int(settings["probe_hidden_state"])
    rows = []
    for _, metrics in probe_metrics.groupby("model", sort=True):
        available = sorted(metrics["hidden_state"].unique())
        hidden_state = available[-1] if wanted == -1 else wanted
        if hidden_state not in available:
            raise NtpsInputError(
                f"correlation.probe_hidden_state {wanted} was not probed (probed: {available}); "
                "add it to forward_pass.pooled_hidden_states"
            )
        rows.append(metrics[metrics["hidden_state"] == hidden_state])
    return pd.concat(rows, ignore_index=True)


def ntps_matrix(rows: pd.DataFrame, datasets: list[str], settings: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
    """The configurations searched and their NTPS per dataset, for one model and variant.

    A configuration is (layer, k_fraction): the released code's k = int(f rank_U) can differ
    between datasets at the same fraction f; k is then the largest of them.

    Returns:
        (configurations with columns layer, k, k_fraction; (n_configurations, n_datasets) NTPS).
    """
    if settings["k_search"] == "paper_grid":
        rows = rows[rows["on_paper_grid"]]
    elif settings["k_search"] != "all":
        raise NtpsInputError(f"correlation.k_search must be 'paper_grid' or 'all', got {settings['k_search']!r}")
    if settings["exclude_final_hidden_state"]:
        # The paper scans the embeddings through the penultimate layer.
        rows = rows[rows["layer"] < rows["layer"].max()]
    # A configuration whose score is undefined on some dataset (an empty U_f) cannot be ranked.
    wide = rows.pivot_table(index=["layer", "k_fraction"], columns="dataset", values="ntps")[datasets].dropna()
    configurations = wide.index.to_frame(index=False)
    largest_k = rows.groupby(["layer", "k_fraction"])["k"].max()
    configurations.insert(1, "k", largest_k.loc[wide.index].to_numpy())
    return configurations, wide.to_numpy()


def ntps_at(
    ntps_table: pd.DataFrame, model: str, variant: str, datasets: list[str], layer: int, k_fraction: float
) -> np.ndarray:
    """(n_datasets,) the model's NTPS of one variant at (layer, k_fraction), in the order of datasets."""
    rows = ntps_table[
        (ntps_table["model"] == model)
        & (ntps_table["variant"] == variant)
        & (ntps_table["layer"] == layer)
        & (ntps_table["k_fraction"] == k_fraction)
    ]
    return rows.set_index("dataset").loc[datasets, "ntps"].to_numpy()


def model_frames(ntps_table: pd.DataFrame, targets: pd.DataFrame):
    """(model, datasets, targets indexed by dataset, that model's NTPS rows) per model of targets
    (one row per model x dataset) with enough datasets; models with fewer than 3 are reported in
    the log and skipped."""
    for model, model_targets in targets.groupby("model", sort=True):
        model_ntps = ntps_table[ntps_table["model"] == model]
        datasets = sorted(set(model_targets["dataset"]) & set(model_ntps["dataset"]))
        if len(datasets) < 3:
            logger.warning(
                "model %s: %d dataset(s) %s, a rank correlation across datasets needs at least 3; skipped",
                model,
                len(datasets),
                datasets,
            )
            continue
        yield model, datasets, model_targets.set_index("dataset").loc[datasets], model_ntps


def configuration_correlations(
    ntps_table: pd.DataFrame, probe_metrics: pd.DataFrame, settings: dict[str, Any]
) -> pd.DataFrame:
    """Spearman r across datasets for every model, variant, searched (layer, k) and target."""
    frames = []
    for model, datasets, targets, model_ntps in model_frames(ntps_table, probe_targets(probe_metrics, settings)):
        for variant in scored_variants(model_ntps):
            configurations, scores = ntps_matrix(model_ntps[model_ntps["variant"] == variant], datasets, settings)
            for target in TARGET_DIRECTIONS:
                frames.append(
                    configurations.assign(
                        model=model,
                        variant=variant,
                        target=target,
                        spearman_r=spearman(scores, targets[target].to_numpy()),
                        n_datasets=len(datasets),
                    )
                )
    columns = ["model", "variant", "target", "layer", "k", "k_fraction", "spearman_r", "n_datasets"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _uncertainty(scores: np.ndarray, targets: np.ndarray, settings: dict[str, Any]) -> dict[str, float]:
    low, high, n_defined = bootstrap_interval(
        scores, targets, settings["bootstrap_resamples"], settings["confidence"], settings["seed"]
    )
    return {"ci_low": low, "ci_high": high, "n_bootstrap_defined": n_defined}


SUMMARY_COLUMNS = [
    "model",
    "target",
    "expected_sign",
    "score",
    "selection",
    "spearman_r",
    "ci_low",
    "ci_high",
    "n_bootstrap_defined",
    "p_value",
    "permutation",
    "layer",
    "k",
    "k_fraction",
    "chosen_per_held_out_dataset",
    "n_datasets",
    "datasets",
]


def target_rows(
    model_ntps: pd.DataFrame,
    datasets: list[str],
    y: np.ndarray,
    direction: int,
    fixed_scores: dict[str, np.ndarray],
    settings: dict[str, Any],
    common: dict[str, Any],
) -> list[dict[str, Any]]:
    """How well each score ranks one target across one model's datasets, one row per way of scoring:

    - ntps_<variant>, best_in_sample: the paper's number, the (layer, k) with the strongest r in
      the expected direction, chosen and reported on the same datasets; its p-value repeats the
      search under every permutation (max statistic), its interval resamples datasets at the
      chosen configuration.
    - ntps_<variant>, leave_one_dataset_out: each dataset's NTPS at the configuration chosen
      without it; r, interval and p of those out-of-fold scores (the selection is repeated
      under each permutation).
    - each of fixed_scores (selection none): a score with no search, e.g. LogME.

    p-values are one-sided in the expected direction.

    Args:
        model_ntps: the model's NTPS rows (both variants).
        y: (n_datasets,) the target, in the order of datasets.
        direction: +1 when a better-aligned representation should raise the target, -1 lower it.
        fixed_scores: name -> (n_datasets,) scores.
        common: columns every row carries (model, target, ...).
    """
    orderings, exact = target_permutations(len(datasets), settings["permutations"], settings["seed"])
    common = {
        **common,
        "expected_sign": direction,
        "n_datasets": len(datasets),
        "datasets": ",".join(datasets),
        "permutation": f"{'exact' if exact else 'random'} {len(orderings)}",
    }
    permuted_targets = y[orderings]
    rows = []
    for variant in scored_variants(model_ntps):
        configurations, scores = ntps_matrix(model_ntps[model_ntps["variant"] == variant], datasets, settings)
        best = select_best_configuration(scores, y, direction)
        permuted_best = permuted_best_r(scores, permuted_targets, direction)
        row = {**common, "score": f"ntps_{variant}", "selection": "best_in_sample", "spearman_r": best.r}
        if best.configuration is not None:
            row.update(configurations.iloc[best.configuration].to_dict())
            row.update(_uncertainty(scores[best.configuration], y, settings))
        row["p_value"] = permutation_p_value(direction * best.r, permuted_best, exact)
        rows.append(row)

        held_out = leave_one_dataset_out(scores, y, direction)
        permuted_held_out = np.array([leave_one_dataset_out(scores, t, direction).r for t in permuted_targets])
        chosen = [
            f"{dataset}:L{configurations['layer'].iloc[index]}/k{configurations['k'].iloc[index]}"
            for dataset, index in zip(datasets, held_out.configurations)
            if index >= 0
        ]
        rows.append(
            {
                **common,
                "score": f"ntps_{variant}",
                "selection": "leave_one_dataset_out",
                "spearman_r": held_out.r,
                "chosen_per_held_out_dataset": "; ".join(chosen),
                **_uncertainty(held_out.held_out_scores, y, settings),
                "p_value": permutation_p_value(direction * held_out.r, direction * permuted_held_out, exact),
            }
        )
    for name, scores in fixed_scores.items():
        r = float(spearman(scores, y))
        rows.append(
            {
                **common,
                "score": name,
                "selection": "none",
                "spearman_r": r,
                **_uncertainty(scores, y, settings),
                "p_value": permutation_p_value(direction * r, direction * spearman(scores, permuted_targets), exact),
            }
        )
    return rows


def summarize_targets(
    ntps_table: pd.DataFrame,
    targets: pd.DataFrame,
    directions: dict[str, int],
    fixed_scores: tuple[str, ...],
    settings: dict[str, Any],
) -> pd.DataFrame:
    """target_rows for every model of targets (one row per model x dataset) and every target of
    directions (target column -> expected sign), with the columns fixed_scores as the scores
    without search; models with fewer than 3 datasets are skipped."""
    rows = []
    for model, datasets, model_targets, model_ntps in model_frames(ntps_table, targets):
        for target, direction in directions.items():
            rows += target_rows(
                model_ntps,
                datasets,
                model_targets[target].to_numpy(dtype=np.float64),
                direction,
                {name: model_targets[name].to_numpy(dtype=np.float64) for name in fixed_scores},
                settings,
                {"model": model, "target": target},
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def correlation_summary(ntps_table: pd.DataFrame, probe_metrics: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """Per model and probe target (expected sign: MSE down, accuracy up), the rows of target_rows,
    with LogME and H-score as the scores without search."""
    return summarize_targets(ntps_table, probe_targets(probe_metrics, settings), TARGET_DIRECTIONS, PEER_SCORES, settings)


def honest_ranking(summary: pd.DataFrame) -> pd.DataFrame:
    """Per model and target, the scores ordered by how well they rank datasets without looking at
    the datasets they are judged on (NTPS leave-one-dataset-out, peers as they are): the
    direction-adjusted r, best first."""
    honest = summary[summary["selection"] != "best_in_sample"].copy()
    honest["aligned_r"] = honest["expected_sign"] * honest["spearman_r"]
    return honest.sort_values(["model", "target", "aligned_r"], ascending=[True, True, False], na_position="last")


def summary_table(summary: pd.DataFrame, first_column: str) -> list[str]:
    """Markdown lines of a correlation summary: r, interval, p and the selected (layer, k) per row,
    after summary[first_column]."""
    lines = [
        f"| {first_column} | score | selection | r | 95% interval | p | layer | k |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary.to_dict("records"):
        configuration = ("", "") if pd.isna(row["layer"]) else (int(row["layer"]), int(row["k"]))
        lines.append(
            f"| {row[first_column]} | {row['score']} | {row['selection']} | {row['spearman_r']:.3f} | "
            f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}] | {row['p_value']:.3f} | {configuration[0]} | {configuration[1]} |"
        )
    return lines


def markdown_report(summary: pd.DataFrame, probe_metrics: pd.DataFrame) -> str:
    """A human-readable report of the run's correlations."""
    lines = ["# Does NTPS predict linear-probe performance?", ""]
    if summary.empty:
        lines.append("No model had the 3 or more datasets a rank correlation across datasets needs.")
        return "\n".join(lines) + "\n"
    lines += [
        "Spearman r across datasets, with a bootstrap interval (datasets resampled) and a one-sided permutation",
        "p-value in the expected direction (NTPS up, MSE down and accuracy up). `best_in_sample` is the paper's",
        "number: the (layer, k) with the strongest r, chosen on the datasets it is reported on; its p-value",
        "repeats that search under every permutation. `leave_one_dataset_out` scores each dataset at the",
        "configuration chosen without it. LogME and H-score are computed on the same features, no search.",
        "",
    ]
    ranking = honest_ranking(summary)
    for model, rows in summary.groupby("model", sort=True):
        lines += [f"## {model} ({rows['n_datasets'].iloc[0]} datasets: {rows['datasets'].iloc[0]})", ""]
        lines += [*summary_table(rows, "target"), ""]
        for target, ranked in ranking[ranking["model"] == model].groupby("target", sort=True):
            best = ranked.iloc[0]
            constant = probe_metrics[probe_metrics["model"] == model].groupby("hidden_state")[target].nunique().min() == 1
            if constant:
                lines.append(f"- {target}: the same on every dataset (nothing to rank), so r is undefined.")
                continue
            if not best["aligned_r"] > 0:
                lines.append(f"- {target}: no score ranks the datasets in the expected direction.")
                continue
            lines.append(
                f"- {target}: ranked best without in-sample selection by **{best['score']}** "
                f"(r = {best['spearman_r']:.3f}, p = {best['p_value']:.3f})."
            )
        lines.append("")
    lines += ["## Probe metrics", "", "```", probe_metrics.to_string(index=False, float_format="{:.4f}".format), "```", ""]
    return "\n".join(lines)

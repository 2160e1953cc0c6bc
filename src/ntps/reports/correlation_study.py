"""Does NTPS rank datasets as the probes do? The tables behind the paper's Figure 2, with the
honest numbers next to the paper's, and beside NTPS every score that needs no NTPS: the peers
(LogME, H-score), the task's trivial baselines and simple estimators on the same features."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ntps.core.correlation import (
    STATISTICS,
    bootstrap_interval,
    leave_one_dataset_out,
    permutation_p_value,
    permuted_best_r,
    permuted_leave_one_out_r,
    rank_correlation,
    select_best_configuration,
    target_permutations,
)
from ntps.core.errors import NtpsInputError
from ntps.core.ntps import scored_variants
from ntps.reports.label_null import label_null_markdown

logger = logging.getLogger(__name__)

# +1: a better representation should raise the target; -1: lower it.
TARGET_DIRECTIONS = {
    "ols_training_mse": -1,
    "ols_test_mse": -1,
    "logistic_train_accuracy": 1,
    "logistic_test_accuracy": 1,
}
# Scores without NTPS, each with the sign that makes larger mean "the features serve the task
# better" (fewer classes: an easier task). Peers: transferability metrics like NTPS. Trivial
# baselines: what the task alone says. Estimators: cheap probes on the same pooled features.
PEER_SCORES = {"logme": 1, "h_score": 1}
TRIVIAL_BASELINES = {"n_classes": -1, "majority_rate": 1, "log_n_train": 1}
ESTIMATORS = {"knn_test_accuracy": 1, "logistic_cv_accuracy": 1}
REFERENCE_SCORES = {**PEER_SCORES, **TRIVIAL_BASELINES, **ESTIMATORS}


def score_kind(score: str) -> str:
    """ntps, peer, trivial or estimator."""
    if score.startswith("ntps_"):
        return "ntps"
    return "peer" if score in PEER_SCORES else "trivial" if score in TRIVIAL_BASELINES else "estimator"


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
                "add it to probes.hidden_states (and forward_pass.pooled_hidden_states)"
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
    """Each rank statistic (correlation.statistics) across datasets for every model, variant,
    searched (layer, k) and target."""
    frames = []
    for model, datasets, targets, model_ntps in model_frames(ntps_table, probe_targets(probe_metrics, settings)):
        for variant in scored_variants(model_ntps):
            configurations, scores = ntps_matrix(model_ntps[model_ntps["variant"] == variant], datasets, settings)
            for target, statistic in itertools.product(TARGET_DIRECTIONS, statistics(settings)):
                frames.append(
                    configurations.assign(
                        model=model,
                        variant=variant,
                        target=target,
                        statistic=statistic,
                        r=rank_correlation(scores, targets[target].to_numpy(), statistic),
                        n_datasets=len(datasets),
                    )
                )
    columns = ["model", "variant", "target", "statistic", "layer", "k", "k_fraction", "r", "n_datasets"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def statistics(settings: dict[str, Any]) -> list[str]:
    """The rank statistics a report computes (correlation.statistics), checked."""
    chosen = list(settings.get("statistics", STATISTICS))
    unknown = sorted(set(chosen) - set(STATISTICS))
    if unknown or not chosen:
        raise NtpsInputError(f"correlation.statistics must list some of {list(STATISTICS)}, got {chosen}")
    return chosen


def _uncertainty(scores: np.ndarray, targets: np.ndarray, settings: dict[str, Any], statistic: str) -> dict[str, float]:
    low, high, n_defined = bootstrap_interval(
        scores, targets, settings["bootstrap_resamples"], settings["confidence"], settings["seed"], statistic
    )
    return {"ci_low": low, "ci_high": high, "n_bootstrap_defined": n_defined}


SUMMARY_COLUMNS = [
    "model",
    "target",
    "expected_sign",
    "score",
    "score_kind",
    "score_sign",
    "selection",
    "statistic",
    "r",
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


@dataclass(frozen=True)
class ModelScores:
    """What every target of one model is ranked by, across that model's datasets.

    Attributes:
        model: the model's name.
        datasets: the datasets, in the order of every array below.
        matrices: variant -> (the configurations searched, (n_configurations, n_datasets) NTPS), as ntps_matrix.
        references: name -> ((n_datasets,) scores, sign), the scores without search.
        corpora: (n_datasets,) each dataset's corpus, or None for no leave-one-corpus-out rows.
    """

    model: str
    datasets: list[str]
    matrices: dict[str, tuple[pd.DataFrame, np.ndarray]]
    references: dict[str, tuple[np.ndarray, int]]
    corpora: np.ndarray | None


@dataclass(frozen=True)
class RankedTarget:
    """One target across one model's datasets and what its r, interval and p need.

    Attributes:
        values: (n_datasets,) the target.
        direction: +1 when a better-aligned representation should raise the target, -1 lower it.
        permuted: (P, n_datasets) the target under each permutation of the permutation test.
        exact: whether permuted holds every permutation (else a random sample of them).
        settings: the correlation settings (bootstrap resamples, confidence, seed).
    """

    values: np.ndarray
    direction: int
    permuted: np.ndarray
    exact: bool
    settings: dict[str, Any]

    def uncertainty(self, scores: np.ndarray, statistic: str) -> dict[str, float]:
        """The bootstrap interval of scores against the target."""
        return _uncertainty(scores, self.values, self.settings, statistic)

    def p_value(self, r: float, permuted_r: np.ndarray) -> float:
        """One-sided permutation p-value of r in the expected direction."""
        return permutation_p_value(self.direction * r, self.direction * permuted_r, self.exact)


def _best_in_sample(
    configurations: pd.DataFrame, scores: np.ndarray, target: RankedTarget, statistic: str
) -> dict[str, Any]:
    """The (layer, k) with the strongest r in the expected direction, chosen and reported on the
    same datasets; its p-value repeats the search under every permutation (max statistic)."""
    best = select_best_configuration(scores, target.values, target.direction, statistic)
    row = {"selection": "best_in_sample", "r": best.r}
    if best.configuration is not None:
        row.update(configurations.iloc[best.configuration].to_dict())
        row.update(target.uncertainty(scores[best.configuration], statistic))
    permuted_best = permuted_best_r(scores, target.permuted, target.direction, statistic)
    # permuted_best_r returns sign * r already: only the observed r is turned to the expected direction.
    row["p_value"] = permutation_p_value(target.direction * best.r, permuted_best, target.exact)
    return row


def _held_out(
    scores: np.ndarray, target: RankedTarget, statistic: str, groups: np.ndarray | None
) -> tuple[dict[str, float], np.ndarray]:
    """r, interval and p of each dataset's NTPS at the configuration chosen with its group held
    out (groups None: each dataset alone), the selection repeated under every permutation; and
    (n_datasets,) the configuration chosen for each dataset (-1: none)."""
    held_out = leave_one_dataset_out(scores, target.values, target.direction, statistic, groups)
    permuted = permuted_leave_one_out_r(scores, target.permuted, target.direction, statistic, groups)
    fields = {
        "r": held_out.r,
        **target.uncertainty(held_out.held_out_scores, statistic),
        "p_value": target.p_value(held_out.r, permuted),
    }
    return fields, held_out.configurations


def _ntps_rows(model: ModelScores, variant: str, target: RankedTarget, statistic: str) -> list[dict[str, Any]]:
    """One variant's best in-sample, leave-one-dataset-out and (with corpora) leave-one-corpus-out rows."""
    configurations, scores = model.matrices[variant]
    held_out, chosen = _held_out(scores, target, statistic, groups=None)
    chosen_per_dataset = [
        f"{dataset}:L{configurations['layer'].iloc[index]}/k{configurations['k'].iloc[index]}"
        for dataset, index in zip(model.datasets, chosen)
        if index >= 0
    ]
    rows = [
        _best_in_sample(configurations, scores, target, statistic),
        {"selection": "leave_one_dataset_out", **held_out, "chosen_per_held_out_dataset": "; ".join(chosen_per_dataset)},
    ]
    if model.corpora is not None:
        rows.append({"selection": "leave_one_corpus_out", **_held_out(scores, target, statistic, model.corpora)[0]})
    ntps = {"score": f"ntps_{variant}", "score_kind": "ntps", "score_sign": 1, "statistic": statistic}
    return [{**ntps, **row} for row in rows]


def _reference_row(name: str, values: np.ndarray, sign: int, target: RankedTarget, statistic: str) -> dict[str, Any]:
    """A score with no search, multiplied by its sign so that larger means better served."""
    scores = sign * values
    r = float(rank_correlation(scores, target.values, statistic))
    return {
        "score": name,
        "score_kind": score_kind(name),
        "score_sign": sign,
        "statistic": statistic,
        "selection": "none",
        "r": r,
        **target.uncertainty(scores, statistic),
        "p_value": target.p_value(r, rank_correlation(scores, target.permuted, statistic)),
    }


def target_rows(
    model: ModelScores, target: str, values: np.ndarray, direction: int, settings: dict[str, Any]
) -> list[dict[str, Any]]:
    """How well each score ranks one target (values, in the order of model.datasets; direction, its
    expected sign) across one model's datasets, one row per way of scoring and rank statistic
    (correlation.statistics):

    - ntps_<variant>, best_in_sample: the paper's number, the (layer, k) with the strongest r in
      the expected direction, chosen and reported on the same datasets; its p-value repeats the
      search under every permutation (max statistic), its interval resamples datasets at the
      chosen configuration.
    - ntps_<variant>, leave_one_dataset_out: each dataset's NTPS at the configuration chosen
      without it; r, interval and p of those out-of-fold scores (the selection is repeated
      under each permutation).
    - ntps_<variant>, leave_one_corpus_out (with corpora): the same with all label views of one
      corpus held out together, as they are not independent tasks.
    - each of model.references (selection none): a score with no search, e.g. LogME, multiplied by
      its sign (score_sign) so that larger means better served.

    p-values are one-sided in the expected direction.
    """
    orderings, exact = target_permutations(len(model.datasets), settings["permutations"], settings["seed"])
    ranked = RankedTarget(values, direction, values[orderings], exact, settings)
    common = {
        "model": model.model,
        "target": target,
        "expected_sign": direction,
        "n_datasets": len(model.datasets),
        "datasets": ",".join(model.datasets),
        "permutation": f"{'exact' if exact else 'random'} {len(orderings)}",
    }
    rows = []
    for statistic in statistics(settings):
        for variant in model.matrices:
            rows += _ntps_rows(model, variant, ranked, statistic)
        rows += [_reference_row(name, *reference, ranked, statistic) for name, reference in model.references.items()]
    return [{**common, **row} for row in rows]


def _corpora(datasets: list[str], corpus_of: dict[str, str] | None) -> np.ndarray | None:
    """(n_datasets,) each dataset's corpus (a dataset corpus_of lacks is its own), or None where
    no corpus holds several datasets or there are fewer than 3 corpora."""
    if corpus_of is None:
        return None
    corpora = np.array([corpus_of.get(dataset, dataset) for dataset in datasets])
    return corpora if 3 <= len(set(corpora)) < len(datasets) else None


def summarize_targets(
    ntps_table: pd.DataFrame,
    targets: pd.DataFrame,
    directions: dict[str, int],
    reference_scores: dict[str, int],
    settings: dict[str, Any],
    corpus_of: dict[str, str] | None = None,
) -> pd.DataFrame:
    """target_rows for every model of targets (one row per model x dataset) and every target of
    directions (target column -> expected sign), with the columns of reference_scores (name ->
    sign) as the scores without search; a reference score targets lack is left out, and said so
    in the log. Models with fewer than 3 datasets are skipped. corpus_of (dataset -> corpus) adds
    leave-one-corpus-out rows where some corpus holds several of a model's datasets and there are
    at least 3 corpora."""
    missing = [name for name in reference_scores if name not in targets.columns]
    if missing:
        logger.warning(
            "reference score(s) %s are missing from the probe metrics (made by an older version?): "
            "left out of the correlations; rerun the probes to add them",
            missing,
        )
    present = {name: sign for name, sign in reference_scores.items() if name not in missing}
    rows = []
    for model, datasets, model_targets, model_ntps in model_frames(ntps_table, targets):
        scores = ModelScores(
            model=model,
            datasets=datasets,
            matrices={
                variant: ntps_matrix(model_ntps[model_ntps["variant"] == variant], datasets, settings)
                for variant in scored_variants(model_ntps)
            },
            references={name: (model_targets[name].to_numpy(dtype=np.float64), sign) for name, sign in present.items()},
            corpora=_corpora(datasets, corpus_of),
        )
        for target, direction in directions.items():
            rows += target_rows(scores, target, model_targets[target].to_numpy(dtype=np.float64), direction, settings)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def corpus_names(datasets: dict[str, dict[str, Any]] | None) -> dict[str, str] | None:
    """dataset -> its corpus, from the datasets registry (a dataset without one is its own); None
    without a registry."""
    return None if datasets is None else {name: spec.get("corpus", name) for name, spec in datasets.items()}


def correlation_summary(
    ntps_table: pd.DataFrame,
    probe_metrics: pd.DataFrame,
    settings: dict[str, Any],
    datasets: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Per model and probe target (expected sign: MSE down, accuracy up), the rows of target_rows,
    with every reference score (peers, trivial baselines, estimators) as the scores without search,
    and leave-one-corpus-out rows where the datasets registry (datasets) puts several of them in
    one corpus."""
    return summarize_targets(
        ntps_table,
        probe_targets(probe_metrics, settings),
        TARGET_DIRECTIONS,
        REFERENCE_SCORES,
        settings,
        corpus_names(datasets),
    )


# The paper's statistic: the Figure 2 and 3 reproductions and the heatmaps show it.
FIGURE_STATISTIC = "spearman"
STATISTIC_NAMES = {"spearman": "Spearman r", "kendall": "Kendall tau", "weighted_tau": "weighted tau"}


def honest_ranking(summary: pd.DataFrame) -> pd.DataFrame:
    """Per model, target and statistic, the scores ordered by how well they rank datasets without
    looking at the datasets they are judged on (NTPS leave-one-dataset-out, the others as they
    are): the direction-adjusted r (aligned_r), best first."""
    honest = summary[summary["selection"] != "best_in_sample"].copy()
    honest["aligned_r"] = honest["expected_sign"] * honest["r"]
    # NTPS has two out-of-sample rows when corpora are known; the label tells them apart.
    honest["label"] = honest["score"].where(
        honest["selection"] != "leave_one_corpus_out", honest["score"] + " (leave one corpus out)"
    )
    return honest.sort_values(
        ["model", "target", "statistic", "aligned_r"], ascending=[True, True, True, False], na_position="last"
    )


def _cell(row: dict[str, Any]) -> str:
    if pd.isna(row["r"]):
        return "undefined"
    cell = f"{row['r']:.3f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}] p={row['p_value']:.3f}"
    if row["selection"] == "best_in_sample" and not pd.isna(row["layer"]):
        cell += f" @L{int(row['layer'])}/k{int(row['k'])}"
    return cell


def summary_table(summary: pd.DataFrame, first_column: str) -> list[str]:
    """Markdown lines of a correlation summary, one row per summary[first_column] x score x
    selection and a column per statistic: r, its interval, its p and, for a best in-sample
    selection, the (layer, k) chosen."""
    present = [statistic for statistic in STATISTICS if statistic in set(summary["statistic"])]
    lines = [
        f"| {first_column} | score | selection | " + " | ".join(STATISTIC_NAMES[s] for s in present) + " |",
        "|---|---|---|" + "---|" * len(present),
    ]
    keys = [first_column, "score", "selection"]
    for key, rows in summary.groupby(keys, sort=False):
        cells = {row["statistic"]: _cell(row) for row in rows.to_dict("records")}
        lines.append("| " + " | ".join(map(str, key)) + " | " + " | ".join(cells.get(s, "") for s in present) + " |")
    return lines


def baseline_verdict(rows: pd.DataFrame) -> str:
    """One sentence for one model, target and statistic: which scores beat every trivial baseline
    out of sample (NTPS leave-one-dataset-out, the others as they are) and by how much, or that none
    did. An undefined r (a constant score) ranks nothing and counts as 0."""
    honest = honest_ranking(rows)
    aligned = honest.set_index("label")["aligned_r"].fillna(0.0)
    trivial = aligned[[score_kind(score) == "trivial" for score in aligned.index]]
    bar, bar_name = (trivial.max(), trivial.idxmax()) if len(trivial) else (0.0, "none computed")
    others = aligned[[score_kind(score) != "trivial" for score in aligned.index]]
    winners = others[others > bar]
    statistic = STATISTIC_NAMES[rows["statistic"].iloc[0]]
    against = f"the best trivial baseline, {bar_name} ({bar:+.3f})"
    if winners.empty:
        return f"{statistic}: no score beat {against} out of sample."
    beaten = ", ".join(f"**{name}** by {value - bar:+.3f}" for name, value in winners.items())
    ntps_note = "" if any(score_kind(name) == "ntps" for name in winners.index) else "; no NTPS variant did"
    return f"{statistic}: beat {against} out of sample: {beaten}{ntps_note}."


def markdown_report(summary: pd.DataFrame, probe_metrics: pd.DataFrame, null_summary: pd.DataFrame | None = None) -> str:
    """A human-readable report of the run's correlations, after where NTPS stands against its own
    shuffled-label null (null_summary, reports.label_null.label_null_summary)."""
    lines = ["# Does NTPS predict linear-probe performance?", ""]
    if null_summary is not None:
        lines += label_null_markdown(null_summary)
    if summary.empty:
        lines.append("No model had the 3 or more datasets a rank correlation across datasets needs.")
        return "\n".join(lines) + "\n"
    lines += [
        "Rank correlation across datasets (Spearman r, Kendall's tau-b and weighted tau, which counts the top",
        "datasets most), each with a bootstrap interval (datasets resampled) and a one-sided permutation p-value",
        "in the expected direction (NTPS up, MSE down and accuracy up). `best_in_sample` is the paper's number:",
        "the (layer, k) with the strongest correlation, chosen on the datasets it is reported on (shown as",
        "@L<layer>/k<k>); its p-value repeats that search under every permutation. `leave_one_dataset_out`",
        "scores each dataset at the configuration chosen without it. The other scores need no NTPS and no",
        "search: peers (LogME, H-score), trivial baselines of the task alone (n_classes, entered negated as",
        "fewer classes make an easier task; majority_rate; log_n_train) and estimators on the same features",
        "(knn_test_accuracy, k chosen by cross-validation on the training texts; logistic_cv_accuracy, the",
        "probe cross-validated on the training texts). A score is worth computing only where it beats every",
        "trivial baseline out of sample.",
        "",
    ]
    for model, model_rows in summary.groupby("model", sort=True):
        lines += [f"## {model} ({model_rows['n_datasets'].iloc[0]} datasets: {model_rows['datasets'].iloc[0]})", ""]
        constant_targets = probe_metrics[probe_metrics["model"] == model].groupby("hidden_state").nunique().min()
        for target, rows in model_rows.groupby("target", sort=False):
            lines += [f"### {target} (expected sign {rows['expected_sign'].iloc[0]:+d})", ""]
            if constant_targets.get(target, 2) == 1:
                lines += [f"{target} is the same on every dataset (nothing to rank), so every r is undefined.", ""]
                continue
            lines += [*summary_table(rows, "target"), ""]
            lines += [f"- {baseline_verdict(statistic_rows)}" for _, statistic_rows in rows.groupby("statistic", sort=False)]
            lines.append("")
    lines += ["## Probe metrics", "", "```", probe_metrics.to_string(index=False, float_format="{:.4f}".format), "```", ""]
    return "\n".join(lines)

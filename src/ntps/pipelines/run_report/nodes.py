"""The run report: per model x dataset, which layer serves the task, how well, how sure, and what each
score would have chosen (ntps.reports.run_report)."""

from __future__ import annotations

import pandas as pd

from ntps.reports.correlation_study import baseline_verdict
from ntps.reports.lora_study import GAIN_TARGETS
from ntps.reports.run_report import run_report

# The cross-task summary reads the probe target a user cares about: held-out accuracy, by Spearman r.
CROSS_TASK_TARGET = "logistic_test_accuracy"
CROSS_TASK_STATISTIC = "spearman"


def cross_task_lines(summary: pd.DataFrame) -> list[str]:
    """Per model with 3 or more datasets, which scores rank its datasets by held-out accuracy better
    than every trivial baseline out of sample (the full tables are in correlation_report.md)."""
    if summary.empty:
        return []
    rows = summary[(summary["target"] == CROSS_TASK_TARGET) & (summary["statistic"] == CROSS_TASK_STATISTIC)]
    return [f"{model}: {baseline_verdict(model_rows)}" for model, model_rows in rows.groupby("model", sort=True)]


def write_run_report(
    layer_probe_table: pd.DataFrame, ntps_table: pd.DataFrame, correlation_summary: pd.DataFrame
) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    return run_report(layer_probe_table, ntps_table, cross_task_lines(correlation_summary))


def gain_lines(gain_correlations: pd.DataFrame) -> list[str]:
    """Per model with 3 or more datasets and per gain, which scores rank its datasets by LoRA's gain
    better than every trivial baseline out of sample (the full tables are in lora_report.md)."""
    if gain_correlations.empty:
        return []
    rows = gain_correlations[gain_correlations["statistic"] == CROSS_TASK_STATISTIC]
    return [
        f"{model}, {GAIN_TARGETS[target].lower()}: {baseline_verdict(model_rows)}"
        for (model, target), model_rows in rows.groupby(["model", "target"], sort=True)
    ]


def write_run_report_after_lora(
    layer_probe_table: pd.DataFrame,
    ntps_table: pd.DataFrame,
    correlation_summary: pd.DataFrame,
    lora_gains: pd.DataFrame,
    lora_gain_correlations: pd.DataFrame,
) -> tuple[str, str]:
    """The run report again, with whether fine-tuning is worth it (a new version of run_report)."""
    report_html, report_markdown, _, _ = run_report(
        layer_probe_table,
        ntps_table,
        cross_task_lines(correlation_summary),
        lora_gains,
        gain_lines(lora_gain_correlations),
    )
    return report_html, report_markdown

"""ntps.reports.plots: figures draw no empty panel."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ntps.reports.plots import plot_score_comparison


def summary_rows(target: str, r: float) -> list[dict]:
    return [
        {
            "model": "m",
            "target": target,
            "score": score,
            "score_kind": kind,
            "selection": "none",
            "statistic": statistic,
            "expected_sign": 1,
            "r": r,
            "ci_low": r - 0.1,
            "ci_high": r + 0.1,
        }
        for score, kind in (("logme", "peer"), ("majority_rate", "trivial"))
        for statistic in ("spearman", "kendall")
    ]


def test_a_target_with_no_defined_correlation_gets_no_panel():
    summary = pd.DataFrame(summary_rows("logistic_test_accuracy", 0.5) + summary_rows("logistic_train_accuracy", np.nan))
    figure = plot_score_comparison(summary, "title")
    titles = [axis.get_title() for axis in figure.axes]
    assert len(titles) == 2 and all("logistic_test_accuracy" in title for title in titles)


def test_no_defined_correlation_at_all_says_so():
    figure = plot_score_comparison(pd.DataFrame(summary_rows("logistic_train_accuracy", np.nan)), "title")
    assert len(figure.axes) == 1 and "no correlation to plot" in figure.axes[0].texts[0].get_text()

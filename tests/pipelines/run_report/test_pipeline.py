"""The run_report stage in memory: one self-contained HTML report whose sections and numbers come from
the run's tables, rendered in headless Chromium."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from ntps.reports.run_report import FIXED_RULES, LAYER_SELECTORS, NTPS_SELECTORS, PROBE
from tests.pipelines.conftest import DATASETS, MODEL


def test_every_pair_gets_its_verdict_figure_and_choices(stage_data):
    layer_probes = stage_data["layer_probe_table"]
    assert sorted(layer_probes["dataset"].unique()) == sorted(DATASETS)
    report = stage_data["run_report"]
    assert report.index("id='verdicts'") < report.index("class='pair'")
    for dataset in DATASETS:
        assert f"<h2 id='{MODEL}.{dataset}' class='pair'>" in report
        assert f"<h3>{MODEL} / {dataset}</h3>" in report and f"### {MODEL} / {dataset}" in stage_data["run_report_markdown"]
    images = re.findall(r"<img alt='[^']*' src='data:image/png;base64,([^']+)'>", report)
    assert len(images) == len(DATASETS)
    assert all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    assert "src='http" not in report and "<script" not in report  # self-contained, opens from disk
    choices = stage_data["layer_choices"]
    selectors = {PROBE, *NTPS_SELECTORS.values(), *LAYER_SELECTORS.values(), *FIXED_RULES.values()}
    for dataset in DATASETS:
        assert set(choices.loc[choices["dataset"] == dataset, "selector"]) == selectors
    probe = choices[choices["selector"] == PROBE]
    assert (probe["cost"] == 0).all() and (choices["regret"] >= -1e-12).all()


def test_the_reports_numbers_are_the_tables(stage_data):
    layer_probes = stage_data["layer_probe_table"]
    report = stage_data["run_report"]
    for dataset in DATASETS:
        best = layer_probes[(layer_probes["dataset"] == dataset) & layer_probes["best_layer"]].iloc[0]
        figures = f"{best['loo_accuracy']:.2f} [{best['loo_low']:.2f}, {best['loo_high']:.2f}]"
        verdict = report[report.index(f"<h3>{MODEL} / {dataset}</h3>") :].split("</ul>")[0]
        assert f"layer {int(best['hidden_state'])}" in verdict.lower() and figures in verdict
        final = layer_probes[layer_probes["dataset"] == dataset].sort_values("hidden_state").iloc[-1]
        logistic = f"gives {best['logistic_test_accuracy']:.2f} held out at layer {int(best['hidden_state'])} and "
        assert logistic + f"{final['logistic_test_accuracy']:.2f} at the final block" in verdict


@pytest.mark.end_to_end
def test_the_report_renders_in_headless_chromium(stage_data, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is needed: scripts/install.sh installs it"
    page = tmp_path / "run_report.html"
    # A probe added to a copy of the page: once loaded, every image's decoded width goes into the DOM.
    probe = (
        "<script>window.onload = () => "
        "document.body.dataset.widths = [...document.images].map(i => i.naturalWidth);</script>"
    )
    page.write_text(stage_data["run_report"].replace("</body>", probe + "</body>"), encoding="utf-8")
    screenshot = tmp_path / "screenshot.png"
    common = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ]
    environment = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run(
        [*common, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    ).stdout
    for dataset in DATASETS:
        assert f"{MODEL} / {dataset}" in dom
    widths = re.search(r'data-widths="([^"]*)"', dom)
    assert widths, "the page did not finish loading"
    assert [int(width) > 0 for width in widths.group(1).split(",")] == [True] * len(DATASETS), "a broken image"
    subprocess.run(
        [*common, "--window-size=1200,1600", f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        env=environment,
    )
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=float)
    assert pixels.std() > 10, "the screenshot is blank"
    assert (pixels < 128).mean() > 0.01, "no text or figure drawn"

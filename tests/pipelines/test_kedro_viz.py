"""kedro viz build renders the ntps pipeline."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

from tests.conftest import offline_environment


@pytest.mark.end_to_end
def test_kedro_viz_build_renders_the_ntps_pipeline_in_headless_chromium(project, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is needed: scripts/install.sh installs it"
    build = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
        cwd=project,
        env=offline_environment(),
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(project / "build"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"http://127.0.0.1:{server.server_address[1]}/?pipeline_id=ntps",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    finally:
        server.shutdown()
    drawn = set(re.findall(r'<text class="pipeline-node__text"[^>]*>([^<]+)</text>', page.stdout))
    # The flowchart's SVG labels: nodes and datasets outside the namespaces, and the collapsed
    # model and dataset namespaces.
    expected = {"combine_ntps_tables", "summarize_correlations", "plot_ntps_vs_probes", "ntps_table", "smollm2_135m"}
    assert expected <= drawn, f"missing from the rendered flowchart: {expected - drawn}"

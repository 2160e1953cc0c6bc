#!/usr/bin/env bash
# Rewrites requirements.lock (pip-tools, every package pinned with its sha256) and the hashes in
# requirements-embedded.txt. By default it pins exactly what .venv holds now, the stack the tests
# last passed with; `--upgrade` resolves pyproject.toml's ranges afresh instead (run the tests
# before committing the result). pip-tools rather than uv: it resolves through pip, which finds the
# CPU build of torch in the machine's wheel folder (pip's find-links), where uv would fetch the
# multi-GB CUDA build from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check pip-tools==7.6.2
embedded=$(grep -o '^[A-Za-z0-9_.-]*==[^ ]*' requirements-embedded.txt)
arguments=(--quiet --generate-hashes --allow-unsafe --strip-extras --extra dev --no-emit-index-url --no-emit-find-links)
if [ "${1:-}" = "--upgrade" ]; then
  arguments+=(--upgrade)
else
  .venv/bin/python -m pip freeze --exclude-editable | grep -v -i -F -x -f <(echo "$embedded") > "$tools/installed.txt"
  arguments+=(--constraint "$tools/installed.txt")
fi
CUSTOM_COMPILE_COMMAND="bash scripts/refresh_lock.sh" \
  "$tools/venv/bin/pip-compile" "${arguments[@]}" --output-file requirements.lock pyproject.toml
# The embedded wheels install with --no-deps, so they are pinned and hashed one by one.
echo "$embedded" | "$tools/venv/bin/python" -m pip download --quiet --no-deps -r /dev/stdin -d "$tools/embedded"
"$tools/venv/bin/python" - "$tools/embedded" <<'PYTHON'
import hashlib, pathlib, re, sys
wheels = {re.sub(r"[-_.]+", "-", path.name.split("-")[0]).lower(): path for path in pathlib.Path(sys.argv[1]).glob("*.whl")}
lines = []
for line in pathlib.Path("requirements-embedded.txt").read_text().splitlines():
    pin = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
    if pin:
        digest = hashlib.sha256(wheels[re.sub(r"[-_.]+", "-", pin[1]).lower()].read_bytes()).hexdigest()
        line = f"{pin[1]}=={pin[2]} --hash=sha256:{digest}"
    lines.append(line)
pathlib.Path("requirements-embedded.txt").write_text("\n".join(lines) + "\n")
PYTHON
echo "requirements.lock and requirements-embedded.txt rewritten; run the tests before committing them"

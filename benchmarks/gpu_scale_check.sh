#!/usr/bin/env bash
# The paper-scale GPU measurements in one run, on a machine that has a GPU, torch,
# transformers and scipy but not this project's install (the device machine some tasks are lent):
# benchmarks/scale_benchmark.py at the real depths of the given widths (default Qwen2-7B's 3,584 and
# Llama-3-8B's 4,096), bf16 forward, float64 statistics and, beside them, statistics with split
# bfloat16 products (bfloat16x3), eigen and scores stages on the GPU, and the torch.linalg path
# against scipy's. The archive writer (ntps.io.npz_dataset) imports Kedro, which
# such a machine lacks, so Kedro and its one missing dependency travel as wheels in .whl/.
#
#   bash benchmarks/gpu_scale_check.sh --fetch-wheels    # here, once: .whl/ (git-ignored, ~270 kB)
#   bash benchmarks/gpu_scale_check.sh [WIDTH ...]       # there, carrying .whl; results in $OUT
#
# The results file that docs/scaling.md's GPU figures are rendered from is
# benchmarks/results/scale_benchmark_gpu.json (scale_benchmark.py --output); a copy goes to $OUT, since
# only $OUT comes back from the device machine. A rehearsal on another device (DEVICE=cpu) writes its
# file to $OUT only, so that it never stands in for the GPU's.
#
# Environment: PYTHON (default python3), DEVICE (default cuda), SCALE_ARGUMENTS (more options for
# scale_benchmark.py, e.g. "--blocks 1 --tokens 1000" for a quick CPU rehearsal of this script).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

if [[ ${1:-} == --fetch-wheels ]]; then
    rm -rf .whl
    for package in kedro parse; do
        version=$(grep -oP "^${package}==\K[^ ]+" requirements.lock)
        "$python" -m pip download -q --no-deps --only-binary=:all: -d .whl "${package}==${version}"
    done
    ls -l .whl
    exit 0
fi

if ! compgen -G ".whl/*.whl" >/dev/null; then
    echo "no wheels in .whl/: run 'bash benchmarks/gpu_scale_check.sh --fetch-wheels' where pip can download, and carry .whl" >&2
    exit 1
fi
out=${OUT:-$(mktemp -d)}
site=$(mktemp -d)
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
export PYTHONPATH="$site:$PWD/src" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 DO_NOT_TRACK=true
if [[ ${DEVICE:-cuda} == cuda* ]]; then
    # A record of the machine, not a condition of the measurement.
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/gpu.csv" || true
fi
"$python" -c "import torch, transformers, scipy; print('torch', torch.__version__, 'transformers', transformers.__version__, 'scipy', scipy.__version__)" | tee "$out/versions.txt"
widths=("$@")
[[ ${#widths[@]} -gt 0 ]] || widths=(3584 4096)
if [[ ${DEVICE:-cuda} == cuda* ]]; then
    results=benchmarks/results/scale_benchmark_gpu.json
else
    results=$out/scale_benchmark_${DEVICE}.json
fi
# shellcheck disable=SC2086  # SCALE_ARGUMENTS is a list of options
"$python" benchmarks/scale_benchmark.py --device "${DEVICE:-cuda}" --widths "${widths[@]}" --products bfloat16x3 \
    --output "$results" ${SCALE_ARGUMENTS:-} \
    >"$out/scale_${DEVICE:-cuda}.jsonl" 2> >(tee "$out/scale_${DEVICE:-cuda}.log" >&2)
[[ $results == "$out"/* ]] || cp "$results" "$out/"
cat "$out/scale_${DEVICE:-cuda}.jsonl"
echo "results file: $results"
echo "results in $out"

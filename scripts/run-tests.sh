#!/usr/bin/env bash
# Set up (idempotent) and run the harness's own tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# -n 2: the suite spends most of its time in single-threaded tiny-model subprocesses; two workers use both cores
exec python -m pytest tests -n 2 --dist worksteal "$@"

#!/usr/bin/env bash
# Set up (idempotent) and run the main job: the sign-off suite on the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec python -m pytest suites "$@"

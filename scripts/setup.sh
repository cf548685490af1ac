#!/usr/bin/env bash
# Create .venv and install tokenlm with its test tools. Idempotent: a second run is quick.
# The CPU build of torch is pinned here (the machines this repo is developed on have it on disk);
# pyproject.toml itself accepts any torch >= 2.4, so GPU users keep their own build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
TORCH_SPEC=${TOKENLM_TORCH:-torch==2.13.0}
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/pip install -q "$TORCH_SPEC" 2>&1 | { grep -v "is ignored" || true; }
fi
.venv/bin/pip install -q -e ".[dev]" 2>&1 | { grep -v "is ignored" || true; }
.venv/bin/python -c "import tokenlm, conditioners" || { echo "setup failed: tokenlm does not import" >&2; exit 1; }

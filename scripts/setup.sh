#!/usr/bin/env bash
# Create .venv and install tokenlm with its test tools at the exact versions of requirements/lock.txt: the versions
# CI tested (refresh the lock with `bash scripts/lock.sh`). Idempotent: a second run is quick, and it puts back any
# package that drifted from the lock.
# The lock pins the CPU build of torch (the machines this repo is developed on have it on disk, and CI tests it);
# pyproject.toml itself keeps open ranges (any torch >= 2.4), so library users and GPU users keep their own build:
# TOKENLM_TORCH="torch==2.13.0" (any pip spec) installs that torch and the rest of the lock around it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOCK=requirements/lock.txt
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=.venv/bin/pip
quiet() { { grep -v "is ignored" || true; }; }
if [ -n "${TOKENLM_TORCH:-}" ]; then
  "$PIP" install -q "$TOKENLM_TORCH" 2>&1 | quiet
  grep -vE '^torch==' "$LOCK" > .venv/lock-without-torch.txt
  "$PIP" install -q -r .venv/lock-without-torch.txt 2>&1 | quiet
else
  "$PIP" install -q -r "$LOCK" 2>&1 | quiet
fi
"$PIP" install -q --no-deps -e . 2>&1 | quiet
# what tests/test_lock.py compares the installed versions against (a torch of your own is left out of the check)
printf '{"lock": "%s", "lock_sha256": "%s", "torch_override": "%s"}\n' "$LOCK" \
  "$(sha256sum "$LOCK" | cut -d' ' -f1)" "${TOKENLM_TORCH:-}" > .venv/tokenlm-lock.json
.venv/bin/python -c "import tokenlm, conditioners" || { echo "setup failed: tokenlm does not import" >&2; exit 1; }

#!/usr/bin/env bash
# Refresh requirements/lock.txt, the exact versions scripts/setup.sh installs and CI tests: pyproject.toml's
# dependencies with the dev and train extras, plus requirements/lock.in (the torch build), for this platform
# (Linux x86_64, CPython 3.11). Versions already in the lock are kept where pyproject.toml still allows them, so
# after editing pyproject.toml only what must change moves; `bash scripts/lock.sh --upgrade` (or
# `--upgrade-package NAME`) moves to the newest releases allowed. Then run .ci/run and commit the new lock.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pip-compile ] || { echo "lock.sh: run scripts/setup.sh first (pip-tools comes with the dev extra)" >&2; exit 1; }
CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" .venv/bin/pip-compile --quiet --strip-extras --extra dev --extra train \
  --no-emit-index-url --no-emit-find-links --output-file requirements/lock.txt "$@" pyproject.toml requirements/lock.in
if grep -iqE '^(nvidia-|triton==)' requirements/lock.txt; then
  echo "lock.sh: the lock holds CUDA packages (torch resolved to PyPI's CUDA build, not the CPU one)" >&2
  exit 1
fi

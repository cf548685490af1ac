#!/usr/bin/env bash
# Every benchmark's --quick mode (a smoke run of seconds each on an idle machine): run by CI (.ci/run) so that a
# benchmark that stops working fails CI. The numbers printed mean nothing; take real ones with the full modes.
# rr_study.py trains two recipes per seed (minutes even with --quick): run it by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
for bench in generate end_to_end train_step ldm eval_suite codec_quality editing melody_stereo streaming; do
  echo "== benchmarks/$bench.py --quick"
  start=$(date +%s)
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$PY" "benchmarks/$bench.py" --quick
  echo "== benchmarks/$bench.py --quick: ok ($(( $(date +%s) - start )) s)"
done

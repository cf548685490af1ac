#!/usr/bin/env bash
# Create .venv-compat: a second environment holding the reference implementations tokenlm's converters are
# checked against (audiocraft 1.3.0, encodec 0.1.1) beside tokenlm itself. Both import torchaudio, which has no
# wheel for tokenlm's own torch, so this environment carries torch 2.11 + torchaudio 2.11 (about 5 GB).
# audiocraft pins torch 2.1 and a long list of training / demo packages, so it is installed with --no-deps and
# only the packages its model, conditioner and codec modules import are added. Every package the main environment
# shares with this one is held at its requirements/lock.txt version (a constraints file), so the parity tests run
# against the transformers, diffusers, ... that CI tested; only torch and numpy differ, on purpose.
# Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-compat
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/pip"
CONSTRAINTS="$VENV/lock-constraints.txt"
grep -vE '^(torch|numpy)==' requirements/lock.txt > "$CONSTRAINTS"
# pip lists audiocraft's unmet pins (torch 2.1, gradio, ...) after every install: expected, so filtered.
quiet() { { grep -vE "is ignored|dependency resolver|^audiocraft .* requires" || true; }; }
if ! "$VENV/bin/python" -c "import torch, torchaudio" >/dev/null 2>&1; then
  "$PIP" install -q "torch==2.11.0" "torchaudio==2.11.0" 2>&1 | quiet
fi
"$PIP" install -q --no-deps "audiocraft==1.3.0" "encodec==0.1.1" 2>&1 | quiet
# What audiocraft's models / modules / data and encodec really import (audiocraft pins numpy < 2; its transformer
# module imports xformers at the top, and 0.0.35 is the release built for torch >= 2.10).
"$PIP" install -q -c "$CONSTRAINTS" "torch==2.11.0" "torchaudio==2.11.0" "numpy<2" einops "av>=11" flashy \
  num2words "omegaconf>=2.3" "hydra-core>=1.3" hydra_colorlog demucs "spacy>=3.6" "librosa>=0.10" \
  torchmetrics "xformers==0.0.35" 2>&1 | quiet
# tokenlm and pytest only: the parity tests need nothing of the dev extra, whose notebook and web-demo tools
# (matplotlib, gradio) need numpy >= 2, which audiocraft's numpy < 2 excludes
"$PIP" install -q -c "$CONSTRAINTS" "torch==2.11.0" "torchaudio==2.11.0" "numpy<2" -e . pytest 2>&1 | quiet
XFORMERS_MORE_DETAILS=0 "$VENV/bin/python" -W ignore -c "import tokenlm, audiocraft.models, encodec" 2>/dev/null \
  || { echo "setup_compat failed: tokenlm / audiocraft / encodec do not import" >&2; exit 1; }

#!/usr/bin/env bash
# Create .venv-compat: a second environment holding the reference implementations tokenlm's converters are
# checked against (audiocraft 1.3.0, encodec 0.1.1) beside tokenlm itself. Both import torchaudio, which has no
# wheel for tokenlm's own torch, so this environment carries torch 2.11 + torchaudio 2.11 (about 5 GB).
# audiocraft pins torch 2.1 and a long list of training / demo packages, so it is installed with --no-deps and
# only the packages its model, conditioner and codec modules import are added. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-compat
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/pip"
quiet() { { grep -v "is ignored" || true; }; }
if ! "$VENV/bin/python" -c "import torch, torchaudio" >/dev/null 2>&1; then
  # The machine-wide pip constraint caps torch at the release on disk; this environment needs an older one.
  PIP_CONSTRAINT= "$PIP" install -q "torch==2.11.0" "torchaudio==2.11.0" 2>&1 | quiet
fi
"$PIP" install -q --no-deps "audiocraft==1.3.0" "encodec==0.1.1" 2>&1 | quiet
# What audiocraft's models / modules / data.audio and encodec really import (audiocraft pins numpy < 2).
PIP_CONSTRAINT= "$PIP" install -q "torch==2.11.0" "torchaudio==2.11.0" "numpy<2" einops "av>=11" flashy \
  num2words "omegaconf>=2.3" "hydra-core>=1.3" hydra_colorlog demucs "spacy>=3.6" "librosa>=0.10" \
  torchmetrics 2>&1 | quiet
PIP_CONSTRAINT= "$PIP" install -q "torch==2.11.0" "torchaudio==2.11.0" "numpy<2" -e ".[dev]" 2>&1 | quiet
"$VENV/bin/python" -c "import tokenlm, audiocraft.models, encodec" \
  || { echo "setup_compat failed: tokenlm / audiocraft / encodec do not import" >&2; exit 1; }

#!/usr/bin/env bash
# GPU readiness, for a user with a CUDA machine (no GPU is lent to the machines this project is developed on):
#   1. the test suite's CUDA-marked tests (pytest -m gpu), which must run, not skip;
#   2. among them, tests/test_gpu.py: the SDPA flash kernel serves the LM's attention under bf16 autocast
#      (only FLASH_ATTENTION allowed, in training and in generation), and the default model follows its prompt;
#   3. the generation benchmark on the GPU (tokenlm under bf16 autocast against transformers in fp32 and bf16).
# Usage: bash scripts/gpu_check.sh   (after `TOKENLM_TORCH="torch==<a CUDA build>" bash scripts/setup.sh`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA device (install a CUDA build of torch: TOKENLM_TORCH=... bash scripts/setup.sh)')"
"$PY" -c "import torch; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0), '; bf16:', torch.cuda.is_bf16_supported())"
log=$(mktemp)
"$PY" -m pytest -m gpu -q -rs -p no:randomly tests 2>&1 | tee "$log"
if grep -qE "SKIPPED|[0-9]+ skipped" "$log"; then
  echo "gpu_check: some CUDA-marked tests were skipped on a CUDA machine (see above)" >&2
  exit 1
fi
"$PY" benchmarks/generate.py --device cuda --sizes tiny,small --repeats 3
echo "gpu_check: passed"

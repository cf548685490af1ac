"""Training checkpoints: weights, EMA, optimizer, scheduler, step, RNG and data position, written atomically.

Layout under ``run_dir/checkpoints``: one folder per kept step (``step_00000100/``) holding
``model.safetensors``, ``ema.safetensors`` and ``training_state.pt`` (plain tensors and numbers only,
read back with ``torch.load(weights_only=True)``), plus a ``latest`` file naming the newest complete one.
A folder is built under a temporary name and renamed into place, so a kill never leaves a half checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tokenlm.common.checkpoint import (  # noqa: F401  (latest_checkpoint: re-exported for the trainer)
    LATEST,
    CheckpointError,
    atomic_write_bytes,
    latest_checkpoint,
    load_weights,
    save_weights,
)


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every random state the run depends on, as tensors and plain numbers."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "generators": {name: gen.get_state() for name, gen in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(state["python"]) if not isinstance(state["python"], tuple) else state["python"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    for name, gen in generators.items():
        gen.set_state(state["generators"][name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: Path,
    step: int,
    module: nn.Module,
    ema_state: dict[str, torch.Tensor],
    training_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write the checkpoint of ``step`` and point ``latest`` at it; keep the newest ``keep`` checkpoints."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    staging = root / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    save_weights(module, staging / "model.safetensors")
    save_file({k: v.contiguous() for k, v in ema_state.items()}, str(staging / "ema.safetensors"))
    torch.save(training_state, staging / "training_state.pt")
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    atomic_write_bytes(root / LATEST, name.encode())
    kept = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in kept[: max(0, len(kept) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load weights into ``module``; return the EMA state and the training state (never unpickles code)."""
    load_weights(module, folder / "model.safetensors")
    ema_state = load_file(str(folder / "ema.safetensors"))
    try:
        training_state = torch.load(folder / "training_state.pt", weights_only=True)
    except Exception as error:  # weights_only refuses anything but tensors and plain containers
        raise CheckpointError(f"cannot read {str(folder / 'training_state.pt')!r}: {error}") from error
    return ema_state, training_state


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``. A torn last line (the process was killed mid-write) is dropped;
    a malformed line before the last is an error, since it means the file was damaged otherwise."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    records = []
    for index, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if index == len(lines) - 1:
                break
            raise ValueError(f"{str(path)!r} line {index + 1} is not JSON: {error}") from error
    return records

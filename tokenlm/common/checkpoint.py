"""Checkpoint folders: ``config.json`` + ``model.safetensors`` (+ assets), written atomically, read with checks."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from tokenlm.version import __version__

FORMAT = "tokenlm"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, corrupt, or does not match the code that reads it."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_config(directory: Path, config: dict[str, Any]) -> None:
    """Write ``config.json`` with the format header (format, version, tokenlm version)."""
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "tokenlm_version": __version__}
    text = json.dumps({**header, **config}, indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(Path(directory) / CONFIG_NAME, text.encode())


def read_config(directory: str | Path) -> dict[str, Any]:
    """Read and check ``config.json`` of a tokenlm checkpoint folder."""
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"checkpoint folder {str(directory)!r} does not exist")
    if not directory.is_dir():
        raise CheckpointError(f"{str(directory)!r} is a file; a checkpoint is a folder with {CONFIG_NAME}")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(
            f"{str(directory)!r} is not a checkpoint folder: it has no {CONFIG_NAME} "
            f"(a tokenlm checkpoint holds {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(config, dict):
        raise CheckpointError(f"{str(path)!r} must hold a JSON object")
    return config


def check_format(config: dict[str, Any], directory: Path) -> None:
    """Raise when ``config`` is not a tokenlm checkpoint this version can read."""
    if config.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(directory)!r} is not a tokenlm checkpoint (its {CONFIG_NAME} has format "
            f"{config.get('format')!r}, model_type {config.get('model_type')!r})"
        )
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(directory)!r} was written by tokenlm {config.get('tokenlm_version', '?')} in checkpoint format "
            f"{version!r}; this tokenlm ({__version__}) reads formats up to {FORMAT_VERSION}: upgrade tokenlm"
        )


def save_weights(module: nn.Module, path: Path) -> None:
    """Save ``module``'s state dict as safetensors (shared tensors de-duplicated), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_model(module, tmp, metadata={"format": "pt", "tokenlm_version": __version__})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_weights(module: nn.Module, path: Path, external: tuple[str, ...] = ()) -> None:
    """Load safetensors weights into ``module``; any missing, unexpected or mis-shaped tensor is an error, except
    that tensors under the ``external`` prefixes (frozen encoders loaded from an installed package) may be absent.

    The file may store floating tensors in another precision (e.g. float16 for shipped models): they are cast to
    the module's dtype."""
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} is missing")
    try:
        missing, unexpected = load_model(module, path, strict=False)
    except SafetensorError as error:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {error}") from error
    except RuntimeError as error:  # shape mismatches from load_state_dict
        raise CheckpointError(f"{str(path)!r} does not match the architecture in its config: {error}") from error
    missing = [name for name in missing if not name.startswith(external)] if external else missing
    if missing or unexpected:
        raise CheckpointError(
            f"{str(path)!r} does not match the architecture in its config: "
            f"missing tensors {sorted(missing)[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected tensors {sorted(unexpected)[:8]}{'...' if len(unexpected) > 8 else ''}"
        )


#: the file under ``run_dir/checkpoints`` naming a run's newest complete training checkpoint
LATEST = "latest"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete training checkpoint folder of a run (``run_dir/checkpoints/<latest>``), or None.

    It lives here rather than in ``tokenlm.train`` so that models that read their own runs (the codec trainee's
    ``from_run``) need not import the trainer: ``train`` imports models, never the reverse.
    """
    pointer = Path(run_dir) / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    if not (folder / "training_state.pt").is_file():
        raise CheckpointError(f"{str(pointer)!r} names {folder.name!r}, which is incomplete or missing")
    return folder

"""Inputs of ``tokenlm eval``: caption lists, manifests, folders of audio, and generation with a model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tokenlm.audio import read_audio
from tokenlm.eval.captions import parse_caption

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def read_captions(path: str | Path) -> list[str]:
    """Non-empty lines of a text file, one caption each."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"caption file not found: '{path}'")
    captions = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not captions:
        raise ValueError(f"caption file '{path}' holds no captions (one per line expected)")
    return captions


def read_entries(path: str | Path) -> list[dict[str, Any]]:
    """Manifest lines with ``path`` made absolute (relative paths are relative to the manifest's folder) and
    ``labels`` filled from the description when the line has none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: '{path}'")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from error
        if not isinstance(record, dict) or "path" not in record or not record.get("description"):
            raise ValueError(f"{path}:{number}: a manifest line needs 'path' and a non-empty 'description'")
        audio = Path(record["path"])
        record["path"] = audio if audio.is_absolute() else path.parent / audio
        record["labels"] = record.get("labels") or parse_caption(record["description"])
        entries.append(record)
    if not entries:
        raise ValueError(f"manifest '{path}' has no entries")
    return entries


def load_clip(path: str | Path) -> tuple[np.ndarray, int]:
    """``([N] float32 mono, sample_rate)`` of an audio file."""
    wav, rate = read_audio(path)  # [C, N]
    return wav.mean(0).numpy(), rate


def audio_files(directory: str | Path) -> list[Path]:
    """Audio files directly in ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"audio folder not found: '{directory}'")
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)


def match_audio(directory: str | Path, entries: Sequence[dict[str, Any]] | None, count: int) -> list[Path]:
    """The generated file for each caption: for manifest entries the file of the same name in
    ``directory``, or else ``clip_00000.wav``, ``clip_00001.wav``, ... in manifest order (what ``tokenlm eval
    --model`` writes to its ``audio`` folder, so a report's audio can be scored again); otherwise the folder's
    audio files in name order (there must be exactly ``count``)."""
    if entries is not None:
        paths = [Path(directory) / Path(entry["path"]).name for entry in entries]
        missing = [str(p) for p in paths if not p.is_file()]
        written = [Path(directory) / f"clip_{index:05d}.wav" for index in range(len(entries))]
        if missing and all(p.is_file() for p in written):
            return written
        if missing:
            raise FileNotFoundError(f"{len(missing)} generated files missing in '{directory}', e.g. {missing[:3]}")
        return paths
    files = audio_files(directory)
    if len(files) != count:
        raise ValueError(f"'{directory}' holds {len(files)} audio files for {count} captions; they must match")
    return files


def generate_clips(model_dir: str | Path, captions: Sequence[str], duration: float, seed: int = 0,
                   batch_size: int = 8, device: str | None = None,
                   sampling: dict[str, Any] | None = None, dtype: str = "auto") -> list[tuple[np.ndarray, int]]:
    """Generate ``duration`` seconds per caption with ``TextToAudio.from_pretrained(model_dir, dtype=dtype)``, in
    batches."""
    from tokenlm.api import TextToAudio

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model = TextToAudio.from_pretrained(model_dir, device=device, dtype=dtype)
    clips = []
    for start in range(0, len(captions), batch_size):
        batch = list(captions[start:start + batch_size])
        audio = model.generate(batch, duration, seed=seed + start, **(sampling or {}))
        clips += [(wav.mean(0).float().numpy(), audio.sample_rate) for wav in audio.wav]
    return clips

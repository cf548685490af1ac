"""Make captioned clips and whole data sets (WAVs + JSONL manifests in the training format).

Example::

    rng = np.random.default_rng(0)
    wav, sample_rate, caption, labels = make_clip(rng, preset="sfx16k")
    manifests = generate_dataset("synth/", n=200, seed=0)  # {"train": ..., "valid": ..., "test_heldout": ...}
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenlm.audio import write_audio
from tokenlm.data.synth.families import FAMILIES, Labels, get_family


@dataclass(frozen=True)
class Preset:
    """A sample rate, the families drawn from, and the default clip duration range in seconds."""

    name: str
    sample_rate: int
    families: tuple[str, ...]
    duration: tuple[float, float]


PRESETS: dict[str, Preset] = {
    "sfx16k": Preset("sfx16k", 16000, ("tone", "noise", "noise_band", "bursts", "clicks", "sweep", "sequence"),
                     (1.0, 5.0)),
    "music32k": Preset("music32k", 32000, ("tone", "chord", "melody", "drums", "clicks"), (3.0, 10.0)),
}
#: the splits ``generate_dataset`` writes, in order, with whether each draws held-out combinations
SPLITS = (("train", False), ("valid", False), ("test_heldout", True))
DURATION_LIMITS = (0.5, 30.0)
MAX_TRIES = 500


def get_preset(name: str) -> Preset:
    """The preset called ``name``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {sorted(PRESETS)}")
    return PRESETS[name]


def duration_range(duration: float | Sequence[float] | None, preset: Preset) -> tuple[float, float]:
    """``duration`` (seconds, or a (low, high) range; None = the preset's) as a checked (low, high) range."""
    if duration is None:
        return preset.duration
    low, high = (duration, duration) if isinstance(duration, (int, float)) else tuple(duration)
    low, high = float(low), float(high)
    if not (DURATION_LIMITS[0] <= low <= high <= DURATION_LIMITS[1]) or not math.isfinite(high):
        raise ValueError(
            f"duration must be seconds (or a low-high range) within {list(DURATION_LIMITS)} with low <= high, "
            f"got {duration!r}"
        )
    return low, high


def _eligible(preset: Preset, families: Sequence[str] | None, high: float) -> list[str]:
    """Families of ``preset`` (or the given ones) whose minimum duration fits under ``high``."""
    names = list(families) if families is not None else list(preset.families)
    for name in names:
        get_family(name)
    eligible = [name for name in names if FAMILIES[name].min_duration <= high]
    if not eligible:
        minimum = min(FAMILIES[name].min_duration for name in names)
        raise ValueError(f"no family fits clips of at most {high} s; the shortest allowed is {minimum} s")
    return eligible


def make_clip(
    rng: np.random.Generator,
    preset: str = "sfx16k",
    *,
    family: str | None = None,
    duration: float | Sequence[float] | None = None,
    heldout: bool | None = None,
    given: Labels | None = None,
) -> tuple[np.ndarray, int, str, Labels]:
    """One captioned clip: ``(wav [N] float32, sample_rate, caption, labels)``.

    Args:
        rng: the only source of randomness (the same state gives the same clip).
        preset: ``"sfx16k"`` or ``"music32k"`` (sample rate, families, default durations).
        family: force one family (e.g. ``"chord"``); default: uniform over the preset's families that fit.
        duration: seconds or a (low, high) range; clipped up to the family's minimum within the range.
        heldout: True draws only held-out attribute combinations, False never does, None either.
        given: labels to keep (e.g. parsed from a caption); the rest are drawn.
    """
    config = get_preset(preset)
    low, high = duration_range(duration, config)
    names = [family] if family is not None else _eligible(config, None, high)
    chosen = get_family(names[int(rng.integers(len(names)))])
    if chosen.min_duration > high:
        raise ValueError(f"family {chosen.name!r} needs clips of at least {chosen.min_duration} s, got at most {high}")
    seconds = float(rng.uniform(max(low, chosen.min_duration), high)) if high > low else high
    seconds = round(max(seconds, chosen.min_duration), 2)
    for _ in range(MAX_TRIES):
        labels = chosen.sample(rng, seconds, given)
        if heldout is None or chosen.heldout(labels) == heldout:
            break
    else:
        raise ValueError(f"could not draw labels of family {chosen.name!r} with heldout={heldout} from {given!r}")
    wav = chosen.render(labels, rng, config.sample_rate, seconds)
    return wav.astype(np.float32), config.sample_rate, chosen.caption(labels, rng), labels


def split_sizes(n: int, valid_fraction: float, heldout_fraction: float) -> dict[str, int]:
    """Clips per split for ``n`` clips in all (at least one in each split)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise ValueError(f"n must be an integer >= 3 (one clip per split at least), got {n!r}")
    for name, fraction in (("valid_fraction", valid_fraction), ("heldout_fraction", heldout_fraction)):
        if not 0.0 < fraction < 0.5:
            raise ValueError(f"{name} must be in (0, 0.5), got {fraction!r}")
    valid = max(1, round(n * valid_fraction))
    heldout = max(1, round(n * heldout_fraction))
    return {"train": n - valid - heldout, "valid": valid, "test_heldout": heldout}


def _write_jsonl(records: list[dict[str, Any]], path: Path) -> Path:
    """Write ``records`` as JSON lines to ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text("".join(json.dumps(record) + "\n" for record in records))
    os.replace(tmp, path)
    return path


def _write_clip(task: tuple[str, int, int, int, str, bool, float, float, tuple[str, ...]]) -> dict[str, Any]:
    """Render and write clip ``index`` of a split; returns its manifest record (runs in worker processes)."""
    out_dir, seed, split_index, index, preset, heldout, low, high, names = task
    split = SPLITS[split_index][0]
    rng = np.random.default_rng([seed, split_index, index])
    family = names[int(rng.integers(len(names)))]
    wav, rate, caption, labels = make_clip(rng, preset, family=family, duration=(low, high), heldout=heldout)
    relative = Path("audio") / split / f"{split}_{index:06d}.wav"
    write_audio(Path(out_dir) / relative, torch.from_numpy(wav), rate, normalize="clip")
    return {"path": relative.as_posix(), "duration": round(wav.shape[0] / rate, 6),
            "sample_rate": rate, "channels": 1, "description": caption, "labels": labels}


def generate_dataset(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    preset: str = "sfx16k",
    *,
    duration: float | Sequence[float] | None = None,
    families: Sequence[str] | None = None,
    valid_fraction: float = 0.1,
    heldout_fraction: float = 0.1,
    workers: int = 1,
) -> dict[str, Path]:
    """Write ``n`` clips as WAVs under ``out_dir/audio/`` and the manifests ``train.jsonl``, ``valid.jsonl``
    and ``test_heldout.jsonl`` (held-out attribute combinations only) in ``out_dir``.

    Each manifest line is ``{"path", "duration", "sample_rate", "channels": 1, "description", "labels"}``
    with ``path`` relative to ``out_dir``. Clip ``i`` of a split depends only on ``(seed, split, i)``, so
    ``workers`` processes render clips in parallel and write the very same data set as one.
    Returns ``{"train": path, "valid": path, "test_heldout": path}``.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    config = get_preset(preset)
    low, high = duration_range(duration, config)
    names = tuple(_eligible(config, families, high))
    sizes = split_sizes(n, valid_fraction, heldout_fraction)
    out_dir = Path(out_dir)
    manifests: dict[str, Path] = {}
    for split_index, (split, heldout) in enumerate(SPLITS):
        tasks = [(str(out_dir), seed, split_index, index, preset, heldout, low, high, names)
                 for index in range(sizes[split])]
        if workers > 1 and len(tasks) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a forked child of a process whose torch / OpenMP threads are running can deadlock
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                records = list(pool.map(_write_clip, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
        else:
            records = [_write_clip(task) for task in tasks]
        manifests[split] = _write_jsonl(records, out_dir / f"{split}.jsonl")
    return manifests

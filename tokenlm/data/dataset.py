"""Random fixed-length audio segments from one or more manifests, deterministic per (seed, index).

Every item is a pure function of ``(seed, index)`` and the files on disk: ``__getitem__`` builds its own
``numpy.random.Generator(PCG64([seed, index]))`` and draws, in order, the manifest (by weight), the file
(uniformly within the manifest), the segment offset (uniformly over the file) and, with mixup, the partner
clip and λ. No state is carried between items, so a trainer resumes mid-epoch by restarting at the same
index position, and DataLoader workers need no seeding. Any non-negative index is valid (not only
``index < len(dataset)``), so a sampler can pass a global position such as ``epoch * len(dataset) + i`` to
get fresh segments every epoch.

Example::

    ds = AudioSegmentDataset(["music/data.jsonl", "sfx/data.jsonl"], segment_duration=10.0,
                             sample_rate=32000, channels=1, weights=[0.7, 0.3])
    batch = collate_audio([ds[i] for i in range(4)])  # wav [4, 1, 320000], mask [4, 320000]
"""

from __future__ import annotations

import logging
import math
import numbers
import operator
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from tokenlm.audio import convert_audio
from tokenlm.data.manifest import SOUNDFILE_ERRORS, AudioEntry, read_manifest

logger = logging.getLogger(__name__)

#: failed reads tolerated for one item before it gives up
MAX_READ_ATTEMPTS = 16


@dataclass(frozen=True)
class Clip:
    """A usable audio file, with the header values read from the file itself (not the manifest)."""

    path: Path
    num_frames: int
    sample_rate: int
    channels: int
    attributes: dict[str, Any]


def probe_entries(
    entries: Sequence[AudioEntry], channels: int | None = None, min_duration: float = 0.0
) -> tuple[list[Clip], Counter[str], list[str]]:
    """Check that each entry's file exists and soundfile reads its header.

    An entry is skipped when its file is missing or unreadable, its duration (manifest or header) is not
    positive, it is shorter than ``min_duration`` seconds, or its channel count cannot be converted to
    ``channels`` (C -> 1 and 1 -> C are allowed). Returns the usable clips, the skip counts by reason and
    up to five ``"path: reason"`` examples.
    """
    clips: list[Clip] = []
    skipped: Counter[str] = Counter()
    examples: list[str] = []

    def skip(entry: AudioEntry, reason: str, detail: str = "") -> None:
        skipped[reason] += 1
        if len(examples) < 5:
            examples.append(f"{entry.path}: {reason}{f' ({detail})' if detail else ''}")

    for entry in entries:
        if not entry.path.is_file():
            skip(entry, "missing file")
            continue
        try:
            info = sf.info(str(entry.path))
        except SOUNDFILE_ERRORS as error:
            skip(entry, "unreadable", str(error).splitlines()[0] if str(error) else type(error).__name__)
            continue
        if entry.duration <= 0 or info.frames <= 0 or info.samplerate <= 0:
            skip(entry, "non-positive duration", f"manifest {entry.duration} s, header {info.frames} frames")
            continue
        if info.frames / info.samplerate < min_duration:
            skip(entry, "shorter than min_duration", f"{info.frames / info.samplerate:.3f} s < {min_duration} s")
            continue
        if channels is not None and info.channels not in (channels, 1) and channels != 1:
            skip(entry, "unsupported channel count", f"{info.channels} channels, need {channels}")
            continue
        clips.append(Clip(entry.path, int(info.frames), int(info.samplerate), int(info.channels),
                          dict(entry.attributes)))
    return clips, skipped, examples


def _as_paths(manifests: Sequence[str | Path] | str | Path) -> list[Path]:
    """One path or a list of paths, as a non-empty list of paths."""
    paths = [Path(manifests)] if isinstance(manifests, (str, os.PathLike)) else [Path(m) for m in manifests]
    if not paths:
        raise ValueError("manifests must name at least one manifest file, got an empty list")
    return paths


def _positive(value: Any, name: str, integer: bool = False) -> Any:
    """``value`` if it is a positive (integer) number, else ValueError naming ``name``."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}")
    return int(value) if integer else float(value)


def _mix_weights(weights: Sequence[float] | None, sizes: list[int], paths: list[Path]) -> np.ndarray:
    """Normalised manifest probabilities; the default is proportional to each manifest's usable files."""
    if weights is None:
        raw = np.asarray(sizes, dtype=np.float64)
    else:
        raw = np.asarray(list(weights), dtype=np.float64)
        if raw.shape != (len(paths),):
            raise ValueError(f"weights must have one value per manifest ({len(paths)}), got {list(weights)}")
        if not np.all(np.isfinite(raw)) or np.any(raw < 0) or raw.sum() <= 0:
            raise ValueError(f"weights must be finite, non-negative and not all zero, got {list(weights)}")
    return raw / raw.sum()


class AudioSegmentDataset(Dataset):
    """Fixed-length segments of audio files listed in manifests, at one sample rate and channel count.

    Args:
        manifests: one manifest path or a list of them.
        segment_duration: seconds per item; ``N = round(segment_duration * sample_rate)`` samples.
        sample_rate: output sample rate (files are resampled with julius).
        channels: output channels (C -> 1 averages, 1 -> C repeats).
        weights: per manifest, the probability that an item comes from it (normalised); by default
            proportional to the manifests' numbers of usable files.
        seed: base seed; item ``i`` depends only on ``(seed, i)``.
        samples_per_epoch: ``len(dataset)``; by default the total number of usable files.
        mixup: probability of mixing an item with a second random clip (AudioGen / AudioLDM augmentation):
            ``wav = λ·main + (1-λ)·other`` with ``λ ~ Beta(mixup_alpha, mixup_alpha)``, ``mask`` the OR of both
            masks. The item keeps the **main clip's attributes only** (its caption is not merged).
        mixup_alpha: the Beta distribution's parameter (5 gives λ mostly within 0.3-0.7).
        min_duration: files shorter than this many seconds are skipped.

    Items are ``{"wav": float32 [C, N], "mask": bool [N] (True = real audio, False = zero padding),
    "attributes": dict, "index": int}``. Files are validated up front: unusable entries are skipped, counted
    in :attr:`skipped` and reported in one warning; a manifest without a usable file raises ValueError.
    A file that fails when read later (say, truncated after indexing) is counted in :attr:`read_failures`
    (per process: each DataLoader worker counts its own), logged, and the item falls back deterministically
    to another file.
    """

    def __init__(
        self,
        manifests: Sequence[str | Path] | str | Path,
        segment_duration: float,
        sample_rate: int,
        channels: int,
        *,
        weights: Sequence[float] | None = None,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        mixup: float = 0.0,
        mixup_alpha: float = 5.0,
        min_duration: float = 0.0,
    ) -> None:
        self.manifests = _as_paths(manifests)
        self.segment_duration = _positive(segment_duration, "segment_duration")
        self.sample_rate = _positive(sample_rate, "sample_rate", integer=True)
        self.channels = _positive(channels, "channels", integer=True)
        self.segment_samples = max(1, round(self.segment_duration * self.sample_rate))
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        if samples_per_epoch is not None:
            samples_per_epoch = _positive(samples_per_epoch, "samples_per_epoch", integer=True)
        self.samples_per_epoch = samples_per_epoch
        if not isinstance(mixup, numbers.Real) or not 0.0 <= mixup <= 1.0:
            raise ValueError(f"mixup must be a probability in [0, 1], got {mixup!r}")
        self.mixup = float(mixup)
        self.mixup_alpha = _positive(mixup_alpha, "mixup_alpha")
        if not isinstance(min_duration, numbers.Real) or not 0.0 <= min_duration < math.inf:
            raise ValueError(f"min_duration must be a finite number of seconds >= 0, got {min_duration!r}")

        self.clips: list[list[Clip]] = []
        self.skipped: dict[str, int] = {}
        skipped: Counter[str] = Counter()
        examples: list[str] = []
        for manifest in self.manifests:
            clips, reasons, first = probe_entries(read_manifest(manifest), self.channels, float(min_duration))
            self.clips.append(clips)
            skipped.update(reasons)
            examples.extend(first)
        self.skipped = dict(skipped)
        if skipped:
            total = sum(len(c) for c in self.clips) + skipped.total()
            reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items()))
            logger.warning(
                "skipped %d of %d manifest entries (%s) in %s; e.g. %s",
                skipped.total(), total, reasons, ", ".join(str(m) for m in self.manifests), "; ".join(examples[:3]),
            )
        empty = [str(m) for m, clips in zip(self.manifests, self.clips, strict=True) if not clips]
        if empty:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items())) or "no entries"
            raise ValueError(f"no usable audio files in manifest(s) {empty} (skipped: {reasons})")
        self.probabilities = _mix_weights(weights, [len(c) for c in self.clips], self.manifests)
        self.read_failures = 0

    # ------------------------------------------------------------------------------------------- sampling

    def __len__(self) -> int:
        """``samples_per_epoch``, or the number of usable files."""
        return self.samples_per_epoch or sum(len(clips) for clips in self.clips)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of item ``index``: PCG64 seeded with ``[seed, index]``."""
        return np.random.Generator(np.random.PCG64([self.seed, index]))

    def _pick(self, rng: np.random.Generator, avoid: set[tuple[int, int]]) -> tuple[int, int] | None:
        """Draw ``(manifest, file)`` by weight, never one in ``avoid``; None when every file is avoided."""
        remaining = [len(clips) - sum(1 for m, _ in avoid if m == i) for i, clips in enumerate(self.clips)]
        probabilities = np.where(np.asarray(remaining) > 0, self.probabilities, 0.0)
        if probabilities.sum() <= 0:
            return None
        cumulative = np.cumsum(probabilities)
        manifest = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")),
                       len(self.clips) - 1)
        excluded = sorted(f for m, f in avoid if m == manifest)
        file = int(rng.integers(len(self.clips[manifest]) - len(excluded)))
        for taken in excluded:  # map to the file-th index not excluded
            if file >= taken:
                file += 1
        return manifest, file

    def _read_segment(self, clip: Clip, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A random segment of ``clip`` as ``wav [C, N]`` and ``mask [N]``; raises on read errors."""
        needed = math.ceil(self.segment_samples * clip.sample_rate / self.sample_rate)  # file frames
        offset = int(rng.integers(clip.num_frames - needed + 1)) if clip.num_frames > needed else 0
        data, rate = sf.read(str(clip.path), start=offset, stop=offset + needed, dtype="float32", always_2d=True)
        if data.shape[0] == 0:
            raise ValueError(f"no audio at frames [{offset}, {offset + needed}) (file shorter than its header said)")
        wav = torch.from_numpy(np.ascontiguousarray(data.T))  # [C_file, n]
        wav = convert_audio(wav, int(rate), self.sample_rate, self.channels)[:, : self.segment_samples]  # [C, n']
        valid = wav.shape[-1]
        mask = torch.zeros(self.segment_samples, dtype=torch.bool)  # [N]
        mask[:valid] = True
        if valid < self.segment_samples:
            wav = torch.nn.functional.pad(wav, (0, self.segment_samples - valid))  # [C, N]
        return wav, mask

    def _draw(
        self, rng: np.random.Generator, index: int, avoid: set[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Pick and read a clip, falling back to other files (drawn from ``rng``) when reads fail."""
        avoid = set(avoid)
        last_error = "every file was excluded"
        for _ in range(MAX_READ_ATTEMPTS):
            key = self._pick(rng, avoid)
            if key is None:
                break
            clip = self.clips[key[0]][key[1]]
            try:
                wav, mask = self._read_segment(clip, rng)
                return wav, mask, key
            except (*SOUNDFILE_ERRORS, EOFError) as error:
                self.read_failures += 1
                last_error = f"'{clip.path}': {str(error).splitlines()[0] if str(error) else type(error).__name__}"
                logger.warning("item %d: could not read %s; falling back to another file", index, last_error)
                avoid.add(key)
        raise RuntimeError(f"item {index}: no readable audio after {MAX_READ_ATTEMPTS} attempts (last: {last_error})")

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item ``index`` (any integer >= 0): ``{"wav": [C, N], "mask": [N], "attributes", "index"}``."""
        index = operator.index(index)
        if index < 0:
            raise IndexError(f"index must be >= 0, got {index}")
        rng = self.rng(index)
        wav, mask, key = self._draw(rng, index, set())  # [C, N], [N]
        if self.mixup > 0 and rng.random() < self.mixup:
            reachable = sum(len(clips) for clips, p in zip(self.clips, self.probabilities, strict=True) if p > 0)
            avoid = {key} if reachable > 1 else set()  # a different file whenever there is one
            other, other_mask, _ = self._draw(rng, index, avoid)  # [C, N], [N]
            lam = float(rng.beta(self.mixup_alpha, self.mixup_alpha))
            wav = lam * wav + (1.0 - lam) * other
            mask = mask | other_mask
        attributes = dict(self.clips[key[0]][key[1]].attributes)
        return {"wav": wav, "mask": mask, "attributes": attributes, "index": index}


def collate_items(items: Sequence[dict[str, Any]], key: str, what: str, setting: str) -> dict[str, Any]:
    """Stack items holding ``key`` (``[...]``, one shape), ``mask``, ``attributes`` and ``index`` into a batch.

    A ValueError names ``what`` the ``key`` tensors are and the ``setting`` that makes their shapes agree.
    """
    if not items:
        raise ValueError("cannot collate an empty list of items")
    shapes = {tuple(item[key].shape) for item in items}
    if len(shapes) != 1:
        raise ValueError(f"items have different {what} shapes {sorted(shapes)}; use one {setting}")
    batch = {
        key: torch.stack([item[key] for item in items]),  # [B, ...]
        "mask": torch.stack([item["mask"] for item in items]),  # [B, N]
        "attributes": [item["attributes"] for item in items],
        "index": torch.tensor([item["index"] for item in items], dtype=torch.long),  # [B]
    }
    if all("source" in item for item in items):  # (path, start s, duration s) of each item's audio
        batch["source"] = [item["source"] for item in items]
    return batch


def read_segment(path: str | Path, start: float, duration: float) -> tuple[torch.Tensor, int]:
    """``duration`` seconds of ``path`` from ``start`` s: float32 ``[C, N]`` and the file's sample rate."""
    info = sf.info(str(path))
    first = max(0, round(start * info.samplerate))
    data, rate = sf.read(str(path), start=first, stop=first + max(1, round(duration * info.samplerate)),
                         dtype="float32", always_2d=True)  # [N, C]
    if data.shape[0] == 0:
        raise ValueError(f"'{path}' has no audio at {start:.3f} s (it is {info.frames / info.samplerate:.3f} s long)")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)


def collate_audio(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack dataset items: ``{"wav": [B, C, N], "mask": [B, N], "attributes": list, "index": LongTensor [B]}``."""
    return collate_items(items, "wav", "waveform", "segment_duration")


__all__ = ["AudioSegmentDataset", "Clip", "collate_audio", "probe_entries", "read_segment"]

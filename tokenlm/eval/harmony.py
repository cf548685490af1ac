"""Chords and keys from a 12-bin chroma vector: harmonic-aware triad templates and Krumhansl-Kessler key
profiles."""

from __future__ import annotations

import functools
import math

import torch

from tokenlm.data.synth.music import PITCH_CLASSES, SCALES, TRIADS

#: Krumhansl & Kessler (1982) probe-tone profiles, tonic first
KEY_PROFILES = {
    "major": (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
    "minor": (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
}
HARMONIC_DECAY = 0.6
HARMONICS = 4


@functools.lru_cache(maxsize=1)
def chord_templates() -> tuple[list[str], torch.Tensor]:
    """Names (``"C major"``...) and unit-norm ``[24, 12]`` templates: each triad note adds its first four
    harmonics (weights 0.6^(k-1)) at their pitch classes, so a real tone's overtones match."""
    names, rows = [], []
    for quality, steps in TRIADS.items():
        for root in range(12):
            row = torch.zeros(12)
            for step in steps:
                for k in range(1, HARMONICS + 1):
                    row[(root + step + round(12 * math.log2(k))) % 12] += HARMONIC_DECAY ** (k - 1)
            names.append(f"{PITCH_CLASSES[root]} {quality}")
            rows.append(row / row.norm())
    return names, torch.stack(rows)


def detect_chord(chroma: torch.Tensor) -> tuple[str, float]:
    """The best matching triad for a ``[12]`` chroma vector and its cosine similarity."""
    names, templates = chord_templates()
    scores = templates @ (chroma / (chroma.norm() + 1e-12))
    best = int(scores.argmax())
    return names[best], float(scores[best])


def detect_key(chroma: torch.Tensor) -> tuple[str, float]:
    """The key (``"D minor"``) whose rotated Krumhansl-Kessler profile correlates best with ``chroma``."""
    best_name, best_score = "", -2.0
    centred = chroma - chroma.mean()
    for mode in SCALES:
        profile = torch.tensor(KEY_PROFILES[mode])
        for root in range(12):
            rotated = torch.roll(profile, root)
            rotated = rotated - rotated.mean()
            score = float((rotated * centred).sum() / (rotated.norm() * centred.norm() + 1e-12))
            if score > best_score:
                best_name, best_score = f"{PITCH_CLASSES[root]} {mode}", score
    return best_name, best_score


def pitch_class_histogram(f0: torch.Tensor) -> torch.Tensor:
    """``[12]`` count of frames per pitch class (nearest semitone) of the voiced ``f0`` values in Hz: the
    duration-weighted pitch profile of a monophonic line."""
    classes = torch.round(69.0 + 12.0 * torch.log2(f0.double() / 440.0)).long() % 12
    return torch.zeros(12).index_add_(0, classes, torch.ones(classes.numel()))

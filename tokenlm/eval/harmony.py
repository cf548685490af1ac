"""Chords and keys from a 12-bin chroma vector: harmonic-aware triad templates and Krumhansl-Kessler key
profiles."""

from __future__ import annotations

import functools
import math

import torch

from tokenlm.data.synth.music import PITCH_CLASSES, TRIADS
from tokenlm.data.synth.music import detect_key as detect_key  # re-exported: the eval's key detector

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


def pitch_class_histogram(f0: torch.Tensor) -> torch.Tensor:
    """``[12]`` count of frames per pitch class (nearest semitone) of the voiced ``f0`` values in Hz: the
    duration-weighted pitch profile of a monophonic line."""
    classes = torch.round(69.0 + 12.0 * torch.log2(f0.double() / 440.0)).long() % 12
    return torch.zeros(12).index_add_(0, classes, torch.ones(classes.numel()))

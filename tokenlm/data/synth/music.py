"""Pitch names, scales, chords and keys (twelve-tone equal temperament, A4 = 440 Hz, C4 = MIDI 60)."""

from __future__ import annotations

import re

import numpy as np
import torch

#: pitch-class names, sharps only (flats are accepted by :func:`parse_pitch_class`)
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"DB": "C#", "EB": "D#", "GB": "F#", "AB": "G#", "BB": "A#", "CB": "B", "FB": "E"}
#: scale steps in semitones above the tonic
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
#: triad intervals in semitones above the root
TRIADS = {"major": (0, 4, 7), "minor": (0, 3, 7)}
#: Krumhansl & Kessler (1982) probe-tone profiles, tonic first
KEY_PROFILES = {
    "major": (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
    "minor": (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
}
_NOTE = re.compile(r"^([A-Ga-g])(#|b|♯|♭)?(-?\d)$")


def midi_to_hz(midi: float | np.ndarray) -> float | np.ndarray:
    """Frequency in Hz of a (fractional) MIDI note number."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def hz_to_midi(hz: float | np.ndarray) -> float | np.ndarray:
    """Fractional MIDI note number of a frequency in Hz (must be > 0)."""
    return 69.0 + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / 440.0)


def parse_pitch_class(name: str) -> int:
    """Pitch class 0..11 of a name such as ``"C"``, ``"F#"``, ``"Bb"`` or ``"e♭"``."""
    clean = name.strip().replace("♯", "#").replace("♭", "b")
    if not clean:
        raise ValueError(f"empty pitch-class name {name!r}; expected e.g. 'C', 'F#' or 'Bb'")
    upper = clean[0].upper() + clean[1:]
    flat = _FLATS.get(upper.upper())
    if flat is not None:
        upper = flat
    if upper not in PITCH_CLASSES:
        raise ValueError(f"unknown pitch class {name!r}; expected one of {list(PITCH_CLASSES)} or a flat like 'Bb'")
    return PITCH_CLASSES.index(upper)


def note_name(midi: int) -> str:
    """Scientific pitch name of a MIDI note, e.g. 69 -> ``"A4"``, 61 -> ``"C#4"``."""
    midi = int(midi)
    return f"{PITCH_CLASSES[midi % 12]}{midi // 12 - 1}"


def parse_note(name: str) -> int:
    """MIDI note of a scientific pitch name (``"A4"``, ``"C#3"``, ``"Bb2"``)."""
    match = _NOTE.match(name.strip())
    if match is None:
        raise ValueError(f"not a note name: {name!r}; expected a letter, optional #/b and an octave, e.g. 'A4'")
    letter, accidental, octave = match.groups()
    pitch_class = parse_pitch_class(letter + (accidental or ""))
    offset = 0
    if (accidental or "") in ("b", "♭") and letter.upper() in ("C", "F"):
        offset = -12 if letter.upper() == "C" else 0  # Cb4 is B3
    return (int(octave) + 1) * 12 + pitch_class + offset


def key_name(root: int, mode: str) -> str:
    """``"D minor"`` from root pitch class 2 and mode ``"minor"``."""
    if mode not in SCALES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {sorted(SCALES)}")
    return f"{PITCH_CLASSES[root % 12]} {mode}"


def chord_name(root: int, quality: str) -> str:
    """``"C major"`` from root pitch class 0 and quality ``"major"``."""
    if quality not in TRIADS:
        raise ValueError(f"unknown chord quality {quality!r}; allowed: {sorted(TRIADS)}")
    return f"{PITCH_CLASSES[root % 12]} {quality}"


def detect_key(chroma: torch.Tensor, profiles: dict | None = None) -> tuple[str, float]:
    """The key (``"D minor"``) whose rotated profile correlates best with a ``[12]`` pitch-class weight vector (a
    chroma, or note durations per pitch class), and the correlation. ``profiles``: ``{mode: [12] weights, tonic
    first}`` (default: Krumhansl-Kessler)."""
    best_name, best_score = "", -2.0
    centred = chroma - chroma.mean()
    for mode, weights in (profiles or KEY_PROFILES).items():
        profile = torch.as_tensor(weights, dtype=torch.float32)
        for root in range(12):
            rotated = torch.roll(profile, root)
            rotated = rotated - rotated.mean()
            score = float((rotated * centred).sum() / (rotated.norm() * centred.norm() + 1e-12))
            if score > best_score:
                best_name, best_score = f"{PITCH_CLASSES[root]} {mode}", score
    return best_name, best_score

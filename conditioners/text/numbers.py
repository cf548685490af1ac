"""Numbers in prompts as values, not only as word pieces: "440 Hz", "120 bpm", "three bursts", "C#4".

Sub-word text encoders (T5, MiniLM, CLAP's RoBERTa) see "437" as one or two arbitrary word pieces, so a model
conditioned on them has to learn every number separately and cannot interpolate between them. Following
continuous number encodings for language models (xVal; Stable Audio's Fourier timing features), a text
conditioner may add to every token that belongs to a number a learned projection of Fourier features of the
number's value on a log scale. The text around the number ("Hz", "bpm", "bursts") still tells the model what
the value measures.

What counts as a number:
- digits with an optional decimal part: ``120``, ``0.5``, ``1,000``;
- number words from zero to twenty: ``three``, ``twelve``;
- scientific note names with an octave, read as their frequency in Hz (A4 = 440 Hz, twelve-tone equal
  temperament): ``A4``, ``C#3``, ``Bb2``, ``F sharp 5``, ``E flat 4``. "A4" and "440 Hz" then share a value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn

NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NOTE = re.compile(r"\b([A-G])(#|♯|b|♭|\s+sharp\s+|\s+flat\s+)?(-?[0-8])(?!\w|\.\d)")
_DIGITS = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])\d+(?:\.\d+)?")
_WORDS = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)
#: largest value told apart: log2(1 + value) / LOG2_RANGE maps [0, 2**20 - 1] to [0, 1]
LOG2_RANGE = 20.0


def note_frequency(letter: str, accidental: str | None, octave: int) -> float:
    """Frequency in Hz of a scientific pitch name (A4 = 440 Hz): ``("C", "#", 4)`` -> 277.18."""
    shift = 0
    accidental = (accidental or "").strip()
    if accidental in ("#", "♯", "sharp"):
        shift = 1
    elif accidental in ("b", "♭", "flat"):
        shift = -1
    midi = (octave + 1) * 12 + _PITCH_CLASS[letter.upper()] + shift
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)


def find_numbers(text: str) -> list[tuple[int, int, float]]:
    """Character spans of the numbers in ``text`` and their values: ``[(start, end, value)]``, in order.

    Example:
        >>> find_numbers("clicks at 120 bpm, three times, on A4")
        [(10, 13, 120.0), (19, 24, 3.0), (35, 37, 440.0)]
    """
    spans: list[tuple[int, int, float]] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for match in _NOTE.finditer(text):
        letter, accidental, octave = match.groups()
        spans.append((match.start(), match.end(), note_frequency(letter, accidental, int(octave))))
        taken.append((match.start(), match.end()))
    for match in _DIGITS.finditer(text):
        if free(match.start(), match.end()):
            spans.append((match.start(), match.end(), float(match.group().replace(",", ""))))
    for match in _WORDS.finditer(text):
        if free(match.start(), match.end()):
            spans.append((match.start(), match.end(), float(NUMBER_WORDS.index(match.group().lower()))))
    return sorted(spans)


def token_values(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int, float]]) -> list[float]:
    """Per token, the value of the number it overlaps (NaN for other tokens and for special tokens, whose
    character offsets are empty)."""
    values = []
    for start, end in offsets:
        value = math.nan
        if end > start:
            for span_start, span_end, number in spans:
                if start < span_end and end > span_start:
                    value = number
                    break
        values.append(value)
    return values


def scale_value(values: torch.Tensor) -> torch.Tensor:
    """Values ``>= 0`` to ``[0, 1]`` on a log scale (negative values count as 0, huge ones saturate)."""
    return (torch.log2(1.0 + values.clamp(min=0.0)) / LOG2_RANGE).clamp(max=1.0)


class NumberFeatures(nn.Module):
    """Values ``[...]`` -> embeddings ``[..., output_dim]``: ``Linear([t, sin(2 pi f t), cos(2 pi f t)])`` with
    ``t`` the log-scaled value and ``f`` fixed frequencies, geometric from 1 to ``max_frequency`` cycles per unit.

    With the defaults the finest frequency resolves 1/300 of the unit, about a quarter of a semitone around
    440 Hz and a third of 4% around 120 bpm.
    """

    def __init__(self, output_dim: int, num_frequencies: int = 32, max_frequency: float = 1024.0) -> None:
        super().__init__()
        if num_frequencies < 1:
            raise ValueError(f"num_frequencies must be >= 1, got {num_frequencies}")
        if max_frequency <= 1.0:
            raise ValueError(f"max_frequency must be > 1 cycle per unit, got {max_frequency}")
        frequencies = torch.logspace(0.0, math.log10(max_frequency), num_frequencies)  # [F]
        self.register_buffer("frequencies", frequencies, persistent=False)
        self.proj = nn.Linear(2 * num_frequencies + 1, output_dim)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        t = scale_value(values.float())[..., None]  # [..., 1]
        phase = 2 * math.pi * t * self.frequencies  # [..., F]
        features = torch.cat([t, phase.sin(), phase.cos()], dim=-1)  # [..., 2F + 1]
        return self.proj(features.to(self.proj.weight.dtype))  # [..., D]

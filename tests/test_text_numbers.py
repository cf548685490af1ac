"""Numbers in prompts: spans and values (digits, number words, note names) and their log-scale features."""

from __future__ import annotations

import math

import pytest
import torch

from conditioners.text.numbers import LOG2_RANGE, NumberFeatures, find_numbers, scale_value, token_values


def semitones_from_a4(n: int) -> float:
    return 440.0 * 2.0 ** (n / 12.0)


@pytest.mark.parametrize(("text", "expected"), [
    ("clicks at 120 bpm", [(10, 13, 120.0)]),
    ("a steady 660 Hz sine", [(9, 12, 660.0)]),
    ("1,000 Hz for 0.5 seconds", [(0, 5, 1000.0), (13, 16, 0.5)]),
    ("three bursts, then Twelve", [(0, 5, 3.0), (19, 25, 12.0)]),
    ("a tone at A4", [(10, 12, 440.0)]),
    ("C#4 and Bb2", [(0, 3, semitones_from_a4(-8)), (8, 11, semitones_from_a4(-23))]),
    ("an E flat 3 note, F sharp 5.", [(3, 11, semitones_from_a4(-18)), (18, 27, semitones_from_a4(9))]),
    ("A 3 second burst", [(2, 3, 3.0)]),  # "A 3" is an article and a number, not the note A3
    ("A4s and A4.5 are not notes", []),  # a note name ends the word; digits glued to letters are no number
    ("no numbers here, nothing at all", []),
    ("someone at the door", []),  # "one" inside a word is not a number
])
def test_find_numbers(text: str, expected: list[tuple[int, int, float]]) -> None:
    found = find_numbers(text)
    assert [(a, b) for a, b, _ in found] == [(a, b) for a, b, _ in expected]
    assert [v for _, _, v in found] == pytest.approx([v for _, _, v in expected])


def test_token_values_follow_character_offsets() -> None:
    spans = find_numbers("at 120 bpm")  # [(3, 6, 120.0)]
    offsets = [(0, 0), (0, 2), (3, 5), (5, 6), (7, 10), (0, 0)]  # [CLS] at 12 ##0 bpm [SEP]
    values = token_values(offsets, spans)
    assert values[2:4] == [120.0, 120.0]
    assert all(math.isnan(v) for i, v in enumerate(values) if i not in (2, 3))


def test_scale_value_is_monotone_log_scale_in_unit_range() -> None:
    values = torch.tensor([-5.0, 0.0, 1.0, 440.0, 880.0, 2.0 ** LOG2_RANGE - 1, 1e12])
    t = scale_value(values)
    assert t[0] == 0 and t[1] == 0 and t[-2] == pytest.approx(1.0) and t[-1] == 1.0
    assert torch.all(t[1:].diff() >= 0)
    # an octave is the same step wherever it lies (log scale), up to the +1
    assert (scale_value(torch.tensor(1760.0)) - scale_value(torch.tensor(880.0))).item() == pytest.approx(
        1 / LOG2_RANGE, rel=1e-3)


def test_number_features_shapes_and_resolution() -> None:
    torch.manual_seed(0)
    features = NumberFeatures(16)
    out = features(torch.tensor([[440.0, 466.16], [120.0, 0.0]]))  # [2, 2] -> [2, 2, 16]
    assert out.shape == (2, 2, 16)
    # the fixed Fourier features tell a semitone apart: their distance is a sizeable share of an octave's
    t = scale_value(torch.tensor([440.0, 466.16, 880.0]))[:, None]
    phase = 2 * math.pi * t * features.frequencies
    raw = torch.cat([t, phase.sin(), phase.cos()], dim=-1)
    semitone, octave = (raw[0] - raw[1]).norm(), (raw[0] - raw[2]).norm()
    assert semitone > 0.5 * octave
    with pytest.raises(ValueError, match="num_frequencies"):
        NumberFeatures(8, num_frequencies=0)
    with pytest.raises(ValueError, match="max_frequency"):
        NumberFeatures(8, max_frequency=1.0)

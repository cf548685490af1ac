"""Which attributes each caption family states, and how each is checked against an :class:`Analysis`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokenlm.eval.analysis import Analysis
from tokenlm.eval.music import key_matches, tempo_matches

#: family -> checked attributes (an attribute is checked when the labels hold its value)
FAMILY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "tone": ("pitch", "waveform", "envelope", "loudness"),
    "chord": ("chord", "envelope", "loudness"),
    "melody": ("key",),
    "sweep": ("direction",),
    "noise": ("noise_colour", "loudness"),
    "noise_band": ("noise_band", "loudness"),
    "bursts": ("count",),
    "clicks": ("tempo", "tempo_octave"),
    "drums": ("tempo", "tempo_octave", "drums"),
    "sequence": ("order",),
    # the real-sound families (tokenlm data music | speech | recorded), judged with analyze(..., extended=True)
    "music": ("music_key", "music_tempo", "drums_present", "instrument_family", "loudness"),
    "speech": ("speech", "voice_pitch"),
    "recorded": ("drums_present", "instrument_family"),
}
#: families whose attributes need the extended detectors
EXTENDED_FAMILIES = ("music", "speech", "recorded")
#: attribute -> the label key holding its expected value
LABEL_KEYS = {"pitch": "pitch_hz", "tempo": "tempo_bpm", "tempo_octave": "tempo_bpm", "music_key": "key",
              "music_tempo": "tempo_bpm", "drums_present": "drums", "instrument_family": "instrument_families",
              "speech": "family"}
PITCH_TOLERANCE_CENTS = 50.0
TEMPO_TOLERANCE = 0.04
LOUDNESS_BOUNDARY_LUFS = -25.0
PLUCKED_DECAY_DB = 6.0
NOISE_MAX_VOICED = 0.3
SWEEP_MIN_SLOPE = 0.2  # octaves per second


@dataclass
class CheckResult:
    """One attribute of one clip: expected value, what the detectors found, and why it missed (if it did)."""

    attribute: str
    expected: Any
    detected: Any
    matched: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "expected": self.expected, "detected": self.detected,
                "matched": self.matched, "reason": self.reason}


def expected_attributes(labels: dict[str, Any]) -> dict[str, Any]:
    """``{attribute: expected value}`` for the checkable attributes of ``labels`` (empty for unknown families)."""
    out = {}
    for attribute in FAMILY_ATTRIBUTES.get(labels.get("family", ""), ()):
        key = LABEL_KEYS.get(attribute, attribute)
        value = labels.get(key)
        if attribute == "instrument_family" and value is None:
            value = labels.get("instrument_family")  # a recorded sample names one family
        if value is not None:
            out[attribute] = value
    return out


def _pitch(expected: float, a: Analysis) -> tuple[Any, bool]:
    if a.f0_hz is None:
        return None, False
    cents = 1200.0 * math.log2(a.f0_hz / float(expected))
    return round(a.f0_hz, 2), abs(cents) <= PITCH_TOLERANCE_CENTS


def _tempo(expected: float, a: Analysis, factors: tuple[float, ...]) -> tuple[Any, bool]:
    if a.tempo_bpm is None:
        return None, False
    matched = any(abs(a.tempo_bpm / (float(expected) * f) - 1.0) <= TEMPO_TOLERANCE for f in factors)
    return round(a.tempo_bpm, 2), matched


def _envelope(a: Analysis) -> str | None:
    if a.decay_db is None:
        return None
    return "plucked" if a.decay_db > PLUCKED_DECAY_DB else "sustained"


def _loudness(a: Analysis) -> str | None:
    if a.lufs is None or not math.isfinite(a.lufs):
        return None
    return "loud" if a.lufs > LOUDNESS_BOUNDARY_LUFS else "quiet"


def _noise(value: str | None, a: Analysis) -> str | None:
    return value if a.voiced_fraction < NOISE_MAX_VOICED else "tonal"


def _direction(a: Analysis) -> str | None:
    if a.pitch_slope is None or a.voiced_fraction < 0.3:
        return None
    if a.pitch_slope > SWEEP_MIN_SLOPE:
        return "rising"
    return "falling" if a.pitch_slope < -SWEEP_MIN_SLOPE else "steady"


_CATEGORICAL: dict[str, Callable[[Analysis], Any]] = {
    "waveform": lambda a: a.waveform,
    "envelope": _envelope,
    "loudness": _loudness,
    "chord": lambda a: a.chord,
    "key": lambda a: a.key,
    "noise_colour": lambda a: _noise(a.noise_colour, a),
    "noise_band": lambda a: _noise(a.noise_band, a),
    "count": lambda a: a.count,
    "direction": _direction,
    "order": lambda a: a.order,
    "drums": lambda a: sorted(a.drums) if a.drums is not None else None,
    "drums_present": lambda a: a.has_drums,
    "voice_pitch": lambda a: a.voice_pitch,
}
ATTRIBUTES = ("pitch", "tempo", "tempo_octave", "music_key", "music_tempo", "instrument_family", "speech",
              *_CATEGORICAL)


def check(attribute: str, expected: Any, analysis: Analysis) -> CheckResult:
    """Check one attribute of one clip; unusable audio is a miss whose reason names the problem."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; allowed: {list(ATTRIBUTES)}")
    if analysis.problems:
        return CheckResult(attribute, expected, None, False, "; ".join(analysis.problems))
    if attribute == "pitch":
        detected, matched = _pitch(expected, analysis)
    elif attribute == "tempo":
        detected, matched = _tempo(expected, analysis, (1.0,))
    elif attribute == "tempo_octave":
        detected, matched = _tempo(expected, analysis, (1.0, 2.0, 0.5))
    elif attribute == "music_tempo":
        detected = round(analysis.music_tempo_bpm, 2) if analysis.music_tempo_bpm is not None else None
        matched = tempo_matches(float(expected), analysis.music_tempo_bpm, TEMPO_TOLERANCE)
    elif attribute == "music_key":
        detected, matched = analysis.music_key, key_matches(str(expected), analysis.music_key)
    elif attribute == "instrument_family":
        # one of the families playing is the detector's top-1 (for one instrument: that family)
        families = [expected] if isinstance(expected, str) else list(expected)
        detected, matched = analysis.instrument_family, analysis.instrument_family in families
    elif attribute == "speech":
        detected, matched = analysis.speech, analysis.speech is True
    else:
        detected = _CATEGORICAL[attribute](analysis)
        target = sorted(expected) if attribute == "drums" else expected
        matched = detected == target
    reason = None
    if not matched:
        reason = "nothing detected" if detected is None else f"detected {detected!r}, expected {expected!r}"
    return CheckResult(attribute, expected, detected, matched, reason)


def check_clip(labels: dict[str, Any], analysis: Analysis) -> list[CheckResult]:
    """Every checkable attribute of one clip's labels."""
    return [check(attribute, value, analysis) for attribute, value in expected_attributes(labels).items()]

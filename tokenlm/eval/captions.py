"""Read the checkable attributes back out of a caption: the family first (from its key words), then the
attributes that family states. It reads every paraphrase the synthetic data set writes and common
variants of them ("440 Hz", "F sharp minor", "Bb major", "three times", "120 bpm")."""

from __future__ import annotations

import re
from typing import Any

from tokenlm.data.synth.music import PITCH_CLASSES, midi_to_hz, parse_note, parse_pitch_class

_NUMBERS = {"one": 1, "single": 1, "once": 1, "two": 2, "twice": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10}
#: (family, pattern) tested in order; the first that matches names the family
_FAMILY_PATTERNS = (
    ("sequence", r"\bthen\b|\bfollowed by\b|\bafter\b"),
    ("drums", r"\bdrums?\b|\bkick\b|\bsnare\b|\bhi-?hats?\b"),
    ("clicks", r"\bbpm\b|beats per minute|\bmetronome\b"),
    ("bursts", r"\bbursts?\b|\bbursting\b|\bbeeps?\b"),
    ("sweep", r"\bsweep|\bglid|\bchirp|\bsiren"),
    ("chord", r"\bchord\b|\btriad\b"),
    ("melody", r"\bmelody\b|\btune\b|\bkey of\b"),
    ("noise_band", r"\brumbl|\bhiss"),
    ("noise", r"\bnoise\b|\bstatic\b"),
    ("tone", r"\btone\b|\bnote\b|\boscillator\b|\bwave\b|\d\s*hz\b|\b[A-G][#b]?\d\b"),
)
_WAVEFORMS = (("sine", r"\bsine\b|\bsinusoid"), ("square", r"\bsquare\b"), ("sawtooth", r"\bsaw(tooth)?\b"),
              ("triangle", r"\btriangle\b"))
_ENVELOPES = (("plucked", r"\bpluck|\bdecaying\b"), ("sustained", r"\bsustained\b|\bsteady\b|\bheld\b"))
_LOUDNESS = (("loud", r"\bloud(ly)?\b|\bstrong(ly)?\b|\bpowerful\b"),
             ("quiet", r"\bquiet(ly)?\b|\bsoft(ly)?\b|\bfaint(ly)?\b|\bgentle\b"))
_COLOURS = (("white", r"\bwhite\b"), ("pink", r"\bpink\b"), ("brown", r"\bbrown(ian)?\b|\bred\b"))
_BANDS = (("low", r"\brumbl"), ("high", r"\bhiss"))
_DIRECTIONS = (("rising", r"\brising\b|\bupwards?\b|\bascending\b|\bup\b"),
               ("falling", r"\bfalling\b|\bdownwards?\b|\bdescending\b|\bdown\b"))
_EVENTS = (("noise", r"\bnoise\b|\bstatic\b"), ("chirp", r"\bchirp"), ("thud", r"\bthud\b|\bthump\b"),
           ("beep", r"\bbeep"))
_CLICKS = (("woodblock", r"\bwood ?block"), ("beep", r"\bbeep"), ("click", r"\bclick|\btick"))
_DRUMS = (("kick", r"\bkick\b|\bbass drum\b"), ("snare", r"\bsnare\b"), ("hihat", r"\bhi-?hats?\b|\bhats\b"))
_PITCH_NAME = r"([A-G])(#|b|♯|♭| sharp| flat)?"
_KEY = re.compile(_PITCH_NAME + r"\s+(major|minor)\b")
_NOTE = re.compile(r"(?<![\w#])([A-G])(#|b|♯|♭)?(\d)\b")
_HZ = re.compile(r"(\d+(?:\.\d+)?)\s*(k?hz)\b", re.IGNORECASE)
_BPM = re.compile(r"(\d+(?:\.\d+)?)\s*(?:bpm|beats per minute)\b", re.IGNORECASE)
_COUNT = re.compile(r"\b(\d+|one|single|once|two|twice|three|four|five|six|seven|eight|nine|ten)\b")


def _first(text: str, options: tuple[tuple[str, str], ...]) -> str | None:
    """The value of the first option whose pattern occurs in ``text``."""
    for value, pattern in options:
        if re.search(pattern, text):
            return value
    return None


def _pitch_class(letter: str, accidental: str | None) -> str:
    accidental = (accidental or "").strip().replace("sharp", "#").replace("flat", "b")
    return PITCH_CLASSES[parse_pitch_class(letter + accidental)]


def detect_family(caption: str) -> str | None:
    """The synthetic family a caption describes, or None."""
    lower = caption.lower()
    for family, pattern in _FAMILY_PATTERNS:
        if re.search(pattern, lower if family != "tone" else caption, flags=re.IGNORECASE if family == "tone" else 0):
            return family
    return None


def _pitch_hz(caption: str) -> float | None:
    match = _HZ.search(caption)
    if match:
        value = float(match.group(1))
        return value * 1000.0 if match.group(2).lower() == "khz" else value
    note = _NOTE.search(caption)
    if note:
        return round(float(midi_to_hz(parse_note("".join(g or "" for g in note.groups())))), 2)
    return None


def _count(lower: str) -> int | None:
    match = _COUNT.search(lower)
    if match is None:
        return 1 if re.search(r"\ba (short |quick )?(burst|beep)\b", lower) else None
    word = match.group(1)
    return int(word) if word.isdigit() else _NUMBERS[word]


def _order(lower: str) -> list[str] | None:
    reverse = re.search(r"\bafter\b", lower) is not None
    parts = re.split(r",?\s*(?:and then|then|followed by|after)\s+", lower, maxsplit=1)
    if len(parts) != 2:
        return None
    events = [_first(part, _EVENTS) for part in parts]
    if None in events:
        return None
    return events[::-1] if reverse else events


def parse_caption(caption: str) -> dict[str, Any]:
    """Labels (``family`` plus the attributes it states) read from a caption; ``{}`` when no family fits.

    Example: ``parse_caption("a loud plucked square tone at A4")`` ->
    ``{"family": "tone", "waveform": "square", "pitch_hz": 440.0, "envelope": "plucked", "loudness": "loud"}``
    """
    family = detect_family(caption)
    if family is None:
        return {}
    lower = caption.lower()
    labels: dict[str, Any] = {"family": family}
    if family in ("tone", "chord", "melody", "sweep"):
        labels["waveform"] = _first(lower, _WAVEFORMS)
    if family in ("tone", "chord"):
        labels["envelope"] = _first(lower, _ENVELOPES)
    if family in ("tone", "chord", "noise", "noise_band"):
        labels["loudness"] = _first(lower, _LOUDNESS)
    if family == "tone":
        labels["pitch_hz"] = _pitch_hz(caption)
    elif family in ("chord", "melody"):
        match = _KEY.search(caption)
        if match:
            labels["chord" if family == "chord" else "key"] = f"{_pitch_class(*match.groups()[:2])} {match.group(3)}"
    elif family == "sweep":
        labels["direction"] = _first(lower, _DIRECTIONS)
    elif family == "noise":
        labels["noise_colour"] = _first(lower, _COLOURS)
    elif family == "noise_band":
        labels["noise_band"] = _first(lower, _BANDS)
    elif family == "bursts":
        labels["event"] = "beep" if re.search(r"\bbeep", lower) else "noise"
        labels["count"] = _count(lower)
    elif family in ("clicks", "drums"):
        match = _BPM.search(caption)
        labels["tempo_bpm"] = float(match.group(1)) if match else None
        if family == "clicks":
            labels["sound"] = _first(lower, _CLICKS)
        else:
            labels["drums"] = [name for name, pattern in _DRUMS if re.search(pattern, lower)]
    elif family == "sequence":
        labels["order"] = _order(lower)
    return {key: value for key, value in labels.items() if value is not None}

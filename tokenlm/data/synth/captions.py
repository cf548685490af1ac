"""Words and phrase helpers for the synthetic captions: several paraphrases per attribute value, so a text
encoder trained on them has to generalise over wording. The caption parser (``tokenlm.eval.captions``)
reads every phrase written here back into attribute labels."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

WAVE_WORDS = {
    "sine": ("sine", "sine-wave", "pure sine"),
    "square": ("square", "square-wave", "hollow square"),
    "sawtooth": ("sawtooth", "saw", "buzzy sawtooth"),
    "triangle": ("triangle", "triangle-wave", "mellow triangle"),
}
ENVELOPE_WORDS = {
    "plucked": ("plucked", "short plucked", "decaying", "plucky"),
    "sustained": ("sustained", "steady", "held", "long sustained"),
}
LOUDNESS_WORDS = {"loud": ("loud", "strong", "powerful"), "quiet": ("quiet", "soft", "faint", "gentle")}
LOUDNESS_ADVERBS = {"loud": ("loudly", "strongly"), "quiet": ("quietly", "softly", "faintly")}
COLOUR_WORDS = {"white": ("white",), "pink": ("pink",), "brown": ("brown", "brownian", "red")}
BAND_PHRASES = {
    "low": ("low rumble", "deep rumble", "low-frequency rumble", "rumbling low noise"),
    "high": ("high hiss", "high-pitched hiss", "hissing high-frequency noise", "sharp hiss"),
}
DIRECTION_ADJECTIVES = {"rising": ("rising", "upward", "ascending"), "falling": ("falling", "downward", "descending")}
DIRECTION_ADVERBS = {"rising": ("up", "upward", "upwards"), "falling": ("down", "downward", "downwards")}
EVENT_PHRASES = {
    "beep": ("a beep", "a short beep", "an electronic beep"),
    "noise": ("a burst of noise", "a noise burst", "a short burst of static"),
    "thud": ("a low thud", "a deep thump", "a dull thud"),
    "chirp": ("a rising chirp", "an upward chirp", "a quick chirp"),
}
CLICK_WORDS = {"click": ("click", "tick"), "woodblock": ("woodblock", "wood block"),
               "beep": ("beep", "electronic beep")}
DRUM_WORDS = {"kick": ("kick", "kick drum", "bass drum"), "snare": ("snare", "snare drum"),
              "hihat": ("hi-hat", "hihat", "hats")}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_FLAT_SPELLING = {"C#": "Db", "D#": "Eb", "F#": "Gb", "G#": "Ab", "A#": "Bb"}
_LETTER_AN = ("A", "E", "F")  # note letters read with a leading vowel sound: "an A", "an E", "an F"


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def article(next_words: str) -> str:
    """``"a"`` or ``"an"`` for the phrase that follows (note names read as letters: "an F# chord")."""
    if re.match(r"^[A-G](#|b)?(\s|$|\d)", next_words):
        return "an" if next_words[0] in _LETTER_AN else "a"
    return "an" if next_words[:1].lower() in "aeiou" and next_words[:1] else "a"


def with_article(phrase: str) -> str:
    """``phrase`` preceded by its article."""
    return f"{article(phrase)} {phrase}"


def spell_pitch_class(rng: np.random.Generator, name: str) -> str:
    """A sharp pitch-class name, sometimes written as its flat equivalent or in words ("C sharp")."""
    choice = int(rng.integers(3))
    if "#" in name and choice == 1:
        return _FLAT_SPELLING[name]
    if "#" in name and choice == 2:
        return name.replace("#", " sharp")
    return name


def count_phrase(n: int) -> str:
    """``3`` -> ``"three"`` (words up to ten, digits beyond)."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def times_phrase(rng: np.random.Generator, n: int) -> str:
    """How many times: ``"once"``, ``"twice"``, ``"three times"`` or ``"3 times"``."""
    if n == 1:
        return "once"
    if n == 2 and rng.random() < 0.5:
        return "twice"
    return f"{count_phrase(n) if rng.random() < 0.7 else n} times"


def tidy(caption: str) -> str:
    """Collapse the double spaces and stray commas left by empty optional slots."""
    caption = re.sub(r"\s+", " ", caption)
    caption = re.sub(r"\s+,", ",", caption)
    return caption.strip(" ,")

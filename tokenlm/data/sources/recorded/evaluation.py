"""Real recordings for checking detectors, none of them used in training: the Hydrogen drum hits
(:func:`hydrogen_hits`), the LMMS instrument samples (:func:`lmms_instrument_samples`) and the spoken English
Asterisk prompts (:func:`asterisk_voice_clips`, transcribed from their names by :func:`asterisk_transcript`); each
list is ``[]`` when its package is absent."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from tokenlm.data.sources.recorded.catalogue import inventory

ASTERISK_DIRS = (Path("/usr/share/asterisk/sounds/en"), Path("/usr/share/asterisk/sounds/en_US_f_Allison"))


def hydrogen_hits() -> list[tuple[str, str, bool]]:
    """``(path, instrument name, is_drum=True)`` of every readable Hydrogen sample with a recognisable name."""
    return [(s.path, s.name, True) for s in inventory("hydrogen")[0]]


def lmms_instrument_samples() -> list[tuple[str, str, str]]:
    """``(path, name, General MIDI instrument family)`` of every readable LMMS sample of a known family."""
    return [(s.path, s.name, s.instrument_family) for s in inventory("lmms")[0] if s.instrument_family]


_ASTERISK_NOT_SPEECH = {"beep", "beeperr", "ascending-2tone", "descending-2tone", "tt-monkeys"}
_NATO = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
         "romeo sierra tango uniform victor whiskey x-ray yankee zulu").split()
_MONTHS = ("january february march april may june july august september october november december").split()
_DAYS = ("sunday monday tuesday wednesday thursday friday saturday").split()
_SPOKEN_SYMBOLS = {"asterisk": "asterisk", "at": "at", "dash": "dash", "dollar": "dollar", "dot": "dot",
                   "equals": "equals", "exclaimation-point": "exclamation point", "plus": "plus", "slash": "slash",
                   "space": "space", "zed": "zed"}


def _number_words(n: int) -> str:
    ones = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen").split()
    tens = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty",
            90: "ninety"}
    if n == 100:
        return "one hundred"
    return ones[n] if n < 20 else tens.get(n, str(n))


def _ordinal(n: int) -> str:
    irregular = {1: "first", 2: "second", 3: "third", 5: "fifth", 8: "eighth", 9: "ninth", 12: "twelfth"}
    word = _number_words(n)
    return irregular.get(n) or (f"{word[:-1]}ieth" if word.endswith("y") else f"{word}th")


def asterisk_transcript(relative: str) -> str:
    """An approximate transcript of an Asterisk prompt from its file name: Debian's ``asterisk-core-sounds-en-*``
    ships no transcript file, so ``digits/7.wav`` -> "seven", ``letters/b.wav`` -> "b", ``vm-goodbye.wav`` ->
    "vm goodbye" (abbreviations stay as written)."""
    folder, _, stem = relative.rpartition("/")
    stem = stem.rsplit(".", 1)[0]
    if folder == "digits" and stem.isdigit():
        return _number_words(int(stem))
    number = re.fullmatch(r"(h|mon|day)-(\d+)", stem)
    if folder == "digits" and number:
        index = int(number[2])
        if number[1] == "mon" and index < 12:
            return _MONTHS[index]
        if number[1] == "day" and index < 7:
            return _DAYS[index]
        if number[1] == "h":
            return _ordinal(index)

    if folder == "letters":
        if stem.startswith("ascii") and stem[5:].isdigit():
            return unicodedata.name(chr(int(stem[5:])), stem).lower()  # ascii36 -> "dollar sign"
        return _SPOKEN_SYMBOLS.get(stem, stem)
    if folder == "phonetic":
        stem = stem.removesuffix("_p")
        return _NATO[ord(stem) - ord("a")] if len(stem) == 1 and stem.isalpha() else \
            _number_words(int(stem)) if stem.isdigit() else stem
    return re.sub(r"[-_]+", " ", stem)


def asterisk_voice_clips() -> list[tuple[str, str]]:
    """``(path, transcript)`` of every spoken English Asterisk prompt (Allison Smith's recordings, 8 kHz), with
    tones, silences and the monkey noises left out; transcripts from :func:`asterisk_transcript`."""
    root = next((d for d in ASTERISK_DIRS if d.is_dir()), None)
    if root is None:
        return []
    clips = []
    for path in sorted(root.rglob("*.wav")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith("silence/") or path.stem in _ASTERISK_NOT_SPEECH:
            continue
        clips.append((str(path), asterisk_transcript(relative)))
    return clips


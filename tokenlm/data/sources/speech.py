"""``tokenlm data speech``: short English sentences spoken by espeak-ng in eight accents, captioned with the words,
the speaker's gender, accent, voice pitch, speed and loudness.

espeak-ng runs as a program (``espeak-ng --stdout``: a 22.05 kHz mono WAV on stdout); its audio is resampled to
``--sample-rate`` and framed by a little silence. A clip is the sentence's natural length plus that silence, and
never longer than ``--duration`` (a sentence that does not fit is dropped as "speech longer than --duration").

Splits: ``test_heldout`` holds out, for each accent, one (gender, speed) combination (:data:`HELDOUT_COMBINATIONS`)
and about one sentence in eight (:func:`heldout_sentence`); ``train`` and ``valid`` never use either.

Voice pitch is the register of the rendered fundamental frequency against :data:`VOICE_PITCH_BOUNDARY_HZ`
(the boundary :func:`tokenlm.eval.speech.voice_pitch` uses). espeak-ng's female variants at ``-p 55..90`` speak
at about 190-320 Hz ("high"); the two deepest female variants at ``-p 0..12`` at about 115-140 Hz ("low"); the
male variants at ``-p 30..65`` at about 80-130 Hz ("low"). espeak-ng's male voices never rise clearly above the
boundary (about 165 Hz at ``-p 99``), so no male voice is labelled "high".

Example::

    tokenlm data speech --n 1000 --out speech/ --workers 2
"""

from __future__ import annotations

import functools
import itertools
import shutil
import subprocess
import zlib
from collections import Counter
from typing import TYPE_CHECKING, Any

from tokenlm.data.sources.base import (
    Clip,
    Credit,
    DataSource,
    MissingRequirement,
    Skipped,
    argparse_type,
    check_duration,
    check_sample_rate,
)

if TYPE_CHECKING:
    import numpy as np

PROGRAM = "espeak-ng"
ESPEAK_RATE = 22050
#: readable accent name -> espeak-ng voice (the English accents espeak-ng 1.51 ships; ``espeak-ng --voices=en``).
#: British is named by its file, ``en`` (gmw/en): ``-v en-gb+f3`` ignores the variant in espeak-ng 1.51
ACCENTS: dict[str, str] = {
    "British": "en",
    "American": "en-us",
    "Scottish": "en-gb-scotland",
    "Received Pronunciation": "en-gb-x-rp",
    "Lancastrian": "en-gb-x-gbclan",
    "West Midlands": "en-gb-x-gbcwmd",
    "Caribbean": "en-029",
    "New York": "en-us-nyc",
}
GENDERS = ("female", "male")
SPEEDS: dict[str, tuple[int, int]] = {"slow": (100, 125), "normal": (150, 175), "fast": (210, 250)}  # words/min
#: accent -> the (gender, speed) only ``test_heldout`` uses: each accent holds out one, and every gender and every
#: speed is held out for some accent (so train still hears each value with other accents)
HELDOUT_COMBINATIONS: dict[str, tuple[str, str]] = {
    accent: (GENDERS[index % 2], tuple(SPEEDS)[(index // 2) % 3]) for index, accent in enumerate(ACCENTS)
}
#: the boundary between a "low" and a "high" voice, Hz of median f0 (shared with :mod:`tokenlm.eval.speech`)
VOICE_PITCH_BOUNDARY_HZ = 165.0
#: (gender, voice pitch) -> (espeak-ng variants, lowest and highest ``-p``); see the module docstring
VOICES: dict[tuple[str, str], tuple[tuple[str, ...], tuple[int, int]]] = {
    ("female", "high"): (("f1", "f2", "f3", "f4", "f5"), (55, 90)),
    ("female", "low"): (("f1", "f4"), (0, 12)),
    ("male", "low"): (("m1", "m2", "m3", "m4", "m5", "m6", "m7"), (30, 65)),
}
LOUDNESS_DB: dict[str, tuple[float, float]] = {"loud": (-4.0, -1.0), "quiet": (-28.0, -20.0)}  # peak dBFS
LEAD_S = (0.1, 0.4)  # silence before the speech
TAIL_S = 0.25  # silence after it
DEFAULT_DURATION = 6.0
DEFAULT_SAMPLE_RATE = 16000
DURATION_LIMITS = (1.0, 30.0)
SAMPLE_RATE_LIMITS = (8000, 48000)
VALID_FRACTION = HELDOUT_FRACTION = 0.1

# --- sentences: templates x word lists, several hundred distinct short sentences --------------------------------
_NAMES = ("anna", "peter", "maria", "david", "sarah", "james", "lucy", "tom")
_NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine")
_TIMES = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "noon", "midnight")
_VEHICLES = ("train", "bus", "boat", "plane", "ferry", "coach")
_FRUITS = ("apples", "pears", "oranges", "lemons", "plums", "peaches")
_ANIMALS = ("cat", "dog", "rabbit", "puppy", "kitten", "old horse")
_FURNITURE = ("table", "bed", "chair", "stairs", "window", "car")
_WEATHER = ("cold", "warm", "windy", "sunny", "rainy", "foggy")
_WHEN = ("tomorrow", "tonight", "on monday", "this weekend", "all day", "in the morning")
_COLOURS = ("red", "blue", "green", "white", "yellow")
_PLACES = ("river", "sea", "park", "station", "church", "school")
_THINGS = ("door", "window", "gate", "shop", "box", "garage")
_RELATIVES = ("sister", "brother", "mother", "father", "uncle", "aunt")
_INSTRUMENTS = ("piano", "violin", "guitar", "drums", "flute", "trumpet", "cello", "organ")
_LANDMARKS = ("bank", "bridge", "corner", "lights", "bakery", "post office")
_TEMPLATES: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("the {} leaves at {}", (_VEHICLES, _TIMES)),
    ("{} bought {} {} at the market", (_NAMES, _NUMBERS, _FRUITS)),
    ("the {} is sleeping under the {}", (_ANIMALS, _FURNITURE)),
    ("it will be {} {}", (_WEATHER, _WHEN)),
    ("{} lives in a {} house by the {}", (_NAMES, _COLOURS, _PLACES)),
    ("please close the {} before you leave", (_THINGS,)),
    ("my {} plays the {}", (_RELATIVES, _INSTRUMENTS)),
    ("turn {} at the {}", (("left", "right"), _LANDMARKS)),
    ("the meeting starts at {}", (_TIMES,)),
    ("{} will call you {}", (_NAMES, _WHEN)),
)


def heldout_sentence(sentence: str) -> bool:
    """Whether ``sentence`` belongs to ``test_heldout`` only (a fixed hash rule: about one in eight)."""
    return zlib.crc32(sentence.encode()) % 8 == 0


@functools.lru_cache(maxsize=1)
def sentence_pools() -> dict[bool, tuple[tuple[str, ...], ...]]:
    """``{heldout: (sentences of one template, of another, ...)}``: every sentence, split by the held-out rule (a
    template with no sentence on one side is left out of that side)."""
    pools: dict[bool, list[tuple[str, ...]]] = {False: [], True: []}
    for template, slots in _TEMPLATES:
        sentences = sorted({template.format(*words) for words in itertools.product(*slots)})
        for heldout in (False, True):
            pools[heldout].append(tuple(s for s in sentences if heldout_sentence(s) == heldout))
    return {key: tuple(pool for pool in value if pool) for key, value in pools.items()}  # no empty templates


def all_sentences() -> list[str]:
    """Every distinct sentence the source can speak, sorted."""
    return sorted({s for pool in sentence_pools().values() for template in pool for s in template})


# --- captions ------------------------------------------------------------------------------------------------------
_NOUNS = {"female": ("a woman", "a female speaker"), "male": ("a man", "a male speaker")}
_VOICE_NOUNS = {"female": ("female voice", "female speaker"), "male": ("male voice", "male speaker")}
_PITCH_WORDS = {"high": ("high-pitched", "high", "bright"), "low": ("low-pitched", "deep", "low")}
_SPEED_ADVERBS = {"slow": ("slowly", "at a slow pace", "unhurriedly"), "normal": ("at a normal pace", "calmly"),
                  "fast": ("quickly", "fast", "rapidly", "at a fast pace")}
_LOUDNESS_ADVERBS = {"loud": ("loudly", "in a loud voice"), "quiet": ("quietly", "softly", "in a quiet voice")}


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def caption(labels: dict[str, Any], rng: np.random.Generator) -> str:
    """A caption for ``labels`` in one of several wordings; the quoted text and the accent name always appear."""
    from tokenlm.data.synth.captions import pick

    noun = pick(rng, _NOUNS[labels["gender"]])
    accent = labels["accent"]
    accent_phrase = f"{_article(accent)} {accent} accent"
    text = f'"{labels["text"]}"'
    manner = [pick(rng, _SPEED_ADVERBS[labels["speed"]])] if labels["speed"] != "normal" or rng.random() < 0.3 else []
    if rng.random() < 0.5:
        manner.append(pick(rng, _LOUDNESS_ADVERBS[labels["loudness"]]))
    manner_text = " and ".join(manner)
    pitch = pick(rng, _PITCH_WORDS[labels["voice_pitch"]])
    form = int(rng.integers(5))
    if form == 0:  # a woman with a Scottish accent says "..."
        return " ".join(filter(None, [f"{noun} with {accent_phrase} says", manner_text, text]))
    if form == 1:  # a man speaking quickly in an American accent: "..."
        return " ".join(filter(None, [f"{noun} speaking", manner_text, f"in {accent_phrase}: {text}"]))
    if form == 2:  # "...", said by a woman with a high voice and a Caribbean accent
        said = " ".join(filter(None, [f"{text}, said", manner_text]))
        return f"{said} by {noun} with {_article(pitch)} {pitch} voice and {accent_phrase}"
    if form == 3:  # a deep male voice with a New York accent saying "..."
        subject = f"{_article(pitch)} {pitch} {pick(rng, _VOICE_NOUNS[labels['gender']])}"
        return " ".join(filter(None, [f"{subject} with {accent_phrase} saying", manner_text, text]))
    return " ".join(filter(None, [f"speech in {accent_phrase}: {noun} with {_article(pitch)} {pitch} voice says",
                                  manner_text, text]))


# --- options -------------------------------------------------------------------------------------------------------
def _options(options: dict[str, Any]) -> tuple[float, int]:
    """(duration, sample rate) from ``options`` (defaults for absent or None values), checked."""
    duration = options.get("duration")
    rate = options.get("sample_rate")
    return (check_duration(DEFAULT_DURATION if duration is None else duration, DURATION_LIMITS),
            check_sample_rate(DEFAULT_SAMPLE_RATE if rate is None else rate, SAMPLE_RATE_LIMITS))


# --- rendering -----------------------------------------------------------------------------------------------------
def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """``(samples [N] float32 in [-1, 1], sample_rate)`` of a 16-bit mono PCM WAV from espeak-ng's stdout, whose
    RIFF and data sizes are placeholders (it writes to a pipe), so the data runs to the end of the bytes."""
    import numpy as np
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{PROGRAM} did not write a WAV file (first bytes {data[:12]!r})")
    position = 12
    rate = channels = bits = 0
    while position + 8 <= len(data):
        chunk, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        body = position + 8
        if chunk == b"fmt ":
            channels = int.from_bytes(data[body + 2:body + 4], "little")
            rate = int.from_bytes(data[body + 4:body + 8], "little")
            bits = int.from_bytes(data[body + 14:body + 16], "little")
        elif chunk == b"data":
            if (channels, bits) != (1, 16):
                raise ValueError(f"expected 16-bit mono audio from {PROGRAM}, got {bits}-bit with {channels} channels")
            payload = data[body:body + (len(data) - body) // 2 * 2]
            return np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0, rate
        position = body + size + (size & 1)
    raise ValueError(f"no audio data in the WAV file from {PROGRAM}")


def speak(text: str, voice: str, pitch: int, words_per_minute: int) -> tuple[np.ndarray, int]:
    """espeak-ng's rendering of ``text``: ``(samples [N] float32, sample_rate)`` (22.05 kHz mono)."""
    program = shutil.which(PROGRAM)
    if program is None:
        raise MissingRequirement(f"{PROGRAM} is not installed: apt-get install espeak-ng")
    result = subprocess.run([program, "-v", voice, "-p", str(pitch), "-s", str(words_per_minute), "-a", "100",
                             "--stdout", text], capture_output=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{PROGRAM} failed on voice {voice!r}: {result.stderr.decode(errors='replace').strip()}")
    return parse_wav(result.stdout)


def resample(wav: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``wav`` [N] at ``rate`` resampled to ``target`` Hz (polyphase, scipy), float32."""
    import numpy as np
    if rate == target:
        return wav.astype(np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    factor = gcd(rate, target)
    return resample_poly(wav.astype(np.float64), target // factor, rate // factor).astype(np.float32)


class SpeechSource(DataSource):
    """Sentences spoken by espeak-ng in eight English accents (see the module docstring)."""

    name = "speech"
    help = "English sentences spoken by espeak-ng in 8 accents, female and male, slow to fast (needs espeak-ng)"
    example = "tokenlm data speech --n 1000 --out speech/ --workers 2"

    def add_arguments(self, parser: Any) -> None:
        """``--duration`` (longest clip, seconds) and ``--sample-rate``."""
        parser.add_argument("--duration", type=argparse_type(check_duration, DURATION_LIMITS),
                            default=DEFAULT_DURATION,
                            help=f"longest clip in seconds (clips are the sentence plus a little silence; "
                                 f"default {DEFAULT_DURATION:g})")
        parser.add_argument("--sample-rate", type=argparse_type(check_sample_rate, SAMPLE_RATE_LIMITS),
                            default=DEFAULT_SAMPLE_RATE,
                            help=f"output sample rate in Hz (default {DEFAULT_SAMPLE_RATE})")

    def check(self, options: dict[str, Any]) -> None:
        """espeak-ng must be on PATH; the options must be valid."""
        _options(options)
        if shutil.which(PROGRAM) is None:
            raise MissingRequirement(f"{PROGRAM} is not installed: apt-get install espeak-ng")

    def plan(self, n: int, seed: int, options: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], Counter]:
        """Every clip's accent, voice, pitch, speed, loudness and sentence, drawn from ``seed``."""
        import numpy as np

        from tokenlm.data.synth.dataset import split_sizes

        _options(options)
        sizes = split_sizes(n, VALID_FRACTION, HELDOUT_FRACTION)
        plans = {}
        for index, split in enumerate(self.splits):
            rng = np.random.default_rng([seed, index, 0x5BEEC])
            plans[split] = [_draw_spec(rng, heldout=split == "test_heldout") for _ in range(sizes[split])]
        return plans, Counter()

    def render(self, spec: dict[str, Any], options: dict[str, Any]) -> Clip | Skipped:
        """Speak the spec's sentence, resample, pad with silence and set the level."""
        import numpy as np
        duration, rate = _options(options)
        wav, espeak_rate = speak(spec["text"], spec["voice"], spec["espeak_pitch"], spec["words_per_minute"])
        wav = resample(wav, espeak_rate, rate)  # [N]
        peak = float(np.abs(wav).max()) if wav.size else 0.0
        if peak <= 0.0:
            return Skipped("silent speech", f"{PROGRAM} wrote no sound for {spec['text']!r} ({spec['voice']})")
        lead = int(round(spec["lead_s"] * rate))
        length = min(lead + wav.size + int(round(TAIL_S * rate)), int(round(duration * rate)))
        if lead + wav.size > length:
            return Skipped("speech longer than --duration",
                           f"{spec['text']!r} at {spec['words_per_minute']} words/min needs "
                           f"{(lead + wav.size) / rate:.2f} s > {duration:g} s")
        out = np.zeros(length, dtype=np.float32)  # [length]
        out[lead:lead + wav.size] = wav * np.float32(10.0 ** (spec["peak_db"] / 20.0) / peak)
        labels = {key: spec[key] for key in ("text", "gender", "accent", "voice_pitch", "espeak_pitch", "speed",
                                             "words_per_minute", "loudness")}
        labels = {"family": "speech", **labels, "espeak_voice": spec["voice"], "peak_db": spec["peak_db"]}
        description = caption(labels, np.random.default_rng(spec["caption_seed"]))
        return Clip(out, rate, description, labels)

    def credits(self, options: dict[str, Any]) -> list[Credit]:
        """espeak-ng (the speech is synthesised)."""
        return [Credit("espeak-ng speech synthesiser", "GPL-3.0-or-later", "Debian espeak-ng",
                       "the speech is synthesised; no recordings are used")]


def _draw_spec(rng: np.random.Generator, heldout: bool) -> dict[str, Any]:
    """One clip's spec: held-out clips use a held-out (gender, speed) for their accent and a held-out sentence."""
    accents = tuple(ACCENTS)
    accent = accents[int(rng.integers(len(accents)))]
    if heldout:
        gender, speed = HELDOUT_COMBINATIONS[accent]
    else:
        allowed = [combo for combo in itertools.product(GENDERS, SPEEDS) if combo != HELDOUT_COMBINATIONS[accent]]
        gender, speed = allowed[int(rng.integers(len(allowed)))]
    pitch_class = "low" if gender == "male" or rng.random() < 0.5 else "high"
    variants, (low, high) = VOICES[(gender, pitch_class)]
    variant = variants[int(rng.integers(len(variants)))]
    templates = sentence_pools()[heldout]
    pool = templates[int(rng.integers(len(templates)))]
    loudness = "loud" if rng.random() < 0.6 else "quiet"
    low_db, high_db = LOUDNESS_DB[loudness]
    slow_wpm, fast_wpm = SPEEDS[speed]
    return {
        "text": pool[int(rng.integers(len(pool)))],
        "accent": accent,
        "gender": gender,
        "voice": f"{ACCENTS[accent]}+{variant}",
        "voice_pitch": pitch_class,
        "espeak_pitch": int(rng.integers(low, high + 1)),
        "speed": speed,
        "words_per_minute": int(rng.integers(slow_wpm, fast_wpm + 1)),
        "loudness": loudness,
        "peak_db": round(float(rng.uniform(low_db, high_db)), 2),
        "lead_s": round(float(rng.uniform(*LEAD_S)), 3),
        "caption_seed": int(rng.integers(2**31)),
    }

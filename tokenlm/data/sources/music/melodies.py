"""Melodies: real tunes from music21's corpus (folk songs of the Essen collection, fiddle tunes of Ryan's Mammoth
Collection, the soprano lines of Bach's chorales), parsed once and cached as JSON, and melodies generated from a
seed (phrases on the scale, chord tones on strong beats, ending on the tonic).

A melody is a list of notes ``(onset, duration, midi)`` in quarter notes from its first full bar, with its meter,
key and where it comes from.

Example::

    library = load_corpus_melodies(limit=200)      # parsed with music21 the first time, then from the cache
    tune = generate_melody(np.random.default_rng(0), "gen-0")
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tokenlm.data.sources.music import COLLECTIONS
from tokenlm.data.synth.music import SCALES

#: meters the arranger writes drums, bass and chords for
METERS = ((2, 4), (3, 4), (4, 4))
_LOCALES = {"deutschland": "German", "lothringen": "Lorraine", "elsass": "Alsatian", "schweiz": "Swiss",
            "oesterreich": "Austrian", "luxemburg": "Luxembourgish", "irland": "Irish", "niederlande": "Dutch",
            "frankreich": "French", "polen": "Polish", "danemark": "Danish", "schweden": "Swedish",
            "jugoslavija": "Yugoslav", "rossija": "Russian", "ungarn": "Hungarian", "boehmen": "Bohemian"}
CACHE_VERSION = 2


@dataclass(frozen=True)
class Melody:
    """A tune: ``notes`` as ``[onset, duration, midi]`` in quarter notes (bar 1 starts at 0), its meter, the key
    it is written in (``tonic`` pitch class 0..11, ``mode``), and its origin."""

    id: str
    notes: tuple[tuple[float, float, int], ...]
    meter: tuple[int, int]
    tonic: int
    mode: str
    origin: str  # caption words: "a German folk song", "a Bach chorale", "an original tune"
    title: str = ""

    @property
    def bar_length(self) -> float:
        """Quarter notes per bar."""
        return self.meter[0] * 4.0 / self.meter[1]

    @property
    def bars(self) -> int:
        """Full bars the melody spans."""
        end = max(onset + duration for onset, duration, _ in self.notes)
        return int(np.ceil(end / self.bar_length - 1e-6))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "notes": [list(note) for note in self.notes], "meter": list(self.meter)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Melody:
        return cls(id=data["id"], notes=tuple((float(a), float(b), int(c)) for a, b, c in data["notes"]),
                   meter=tuple(data["meter"]), tonic=int(data["tonic"]), mode=str(data["mode"]),
                   origin=str(data["origin"]), title=str(data.get("title", "")))


def heldout_melody(melody_id: str, fraction: float = 0.1) -> bool:
    """Whether a melody is reserved for the held-out split (a stable hash of its id, about ``fraction``)."""
    digest = int(hashlib.sha256(melody_id.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < fraction


# ---------------------------------------------------------------------------------------------------- corpus


def _origin(collection: str, locale: str) -> str:
    if collection == "bach":
        return "a Bach chorale"
    if collection == "ryansMammoth":
        return "a fiddle tune"
    place = locale.lower().split(",")[-1].strip() if locale else ""
    word = _LOCALES.get(re.sub(r"[^a-z]", "", place))
    return f"a {word} folk song" if word else "a European folk song"


def melody_from_score(score: Any, melody_id: str, collection: str) -> tuple[Melody | None, str]:
    """A :class:`Melody` from a music21 score (its first part), or ``(None, reason)`` when it cannot be arranged."""
    from music21 import meter as m21meter

    part = score.parts[0] if score.parts else score
    signatures = list(part.recurse().getElementsByClass(m21meter.TimeSignature))
    if not signatures:
        return None, "no time signature"
    numerator, denominator = signatures[0].numerator, signatures[0].denominator
    if len({(s.numerator, s.denominator) for s in signatures}) > 1:
        return None, "meter changes"
    scale = 1.0
    if denominator in (1, 2) and (numerator, 4) in METERS:
        # 4/2, 3/2, 2/2, 3/1 ...: the same rhythm written in longer note values; read it in quarter-note beats
        scale, denominator = denominator / 4.0, 4
    if (numerator, denominator) not in METERS:
        return None, f"meter {numerator}/{denominator}"
    bar = numerator * 4.0 / denominator
    measures = list(part.getElementsByClass("Measure"))
    pickup = 0.0
    if measures:
        first = float(measures[0].duration.quarterLength) * scale
        if 0 < first < bar - 1e-6:
            pickup = bar - first  # bar 1 starts after the anacrusis: shift so bar lines fall on multiples of `bar`
    notes = []
    for element in part.flatten().notes:
        if element.isChord:
            midi = max(p.midi for p in element.pitches)  # the top voice
        else:
            midi = element.pitch.midi
        duration = float(element.quarterLength) * scale
        if duration <= 0:
            continue  # grace notes
        notes.append((round(float(element.offset) * scale + pickup, 4), round(duration, 4), int(midi)))
    if len(notes) < 8:
        return None, "fewer than 8 notes"
    key = score.analyze("key")
    mode = key.mode if key.mode in SCALES else None
    if mode is None:
        return None, f"mode {key.mode}"
    locale = ""
    if score.metadata is not None:
        locale = str(getattr(score.metadata, "localeOfComposition", "") or "")
    title = str(score.metadata.title) if score.metadata is not None and score.metadata.title else ""
    return Melody(melody_id, tuple(notes), (numerator, denominator), int(key.tonic.pitchClass), mode,
                  _origin(collection, locale), title), ""


def _corpus_files(collection: str) -> list[Path]:
    from music21 import corpus

    files = [Path(p) for p in corpus.getCorePaths() if f"/{collection}/" in str(p)]
    if collection == "bach":
        files = [p for p in files if p.suffix in (".mxl", ".xml", ".krn") and "bwv" in p.name]
    if collection == "essenFolksong":
        files = [p for p in files if not p.name.startswith(("han", "test", "variant"))]  # Chinese (pentatonic), tests
    return sorted(files)


def _parse_file(path: Path, collection: str) -> tuple[list[Melody], Counter]:
    """Every arrangeable tune of one corpus file, and the reasons others were skipped."""
    from music21 import converter, stream

    skipped: Counter = Counter()
    try:
        parsed = converter.parse(str(path))
    except Exception as err:  # noqa: BLE001 - any parse failure of one file is a counted skip
        skipped[f"unparsable file ({type(err).__name__})"] += 1
        return [], skipped
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    melodies = []
    for index, score in enumerate(scores):
        melody_id = f"{collection}/{path.stem}/{index}"
        try:
            melody, reason = melody_from_score(score, melody_id, collection)
        except Exception as err:  # noqa: BLE001 - a tune music21 cannot analyse is a counted skip
            melody, reason = None, f"unparsable tune ({type(err).__name__})"
        if melody is None:
            skipped[reason] += 1
        else:
            melodies.append(melody)
    return melodies, skipped


def cache_dir() -> Path:
    """Where parsed melodies are kept: ``$TOKENLM_CACHE`` or ``~/.cache/tokenlm``."""
    root = os.environ.get("TOKENLM_CACHE") or Path.home() / ".cache" / "tokenlm"
    return Path(root) / "melodies"


def _parse_cached(path: Path, collection: str) -> tuple[list[Melody], Counter]:
    import music21

    key = hashlib.sha256(f"{CACHE_VERSION}:{music21.__version__}:{path}:{path.stat().st_size}".encode()).hexdigest()
    cached = cache_dir() / f"{key[:24]}.json"
    if cached.exists():
        try:
            data = json.loads(cached.read_text())
            return [Melody.from_json(m) for m in data["melodies"]], Counter(data["skipped"])
        except (ValueError, KeyError, TypeError):
            pass  # a corrupt cache entry is parsed again
    melodies, skipped = _parse_file(path, collection)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps({"melodies": [m.to_json() for m in melodies], "skipped": dict(skipped)}))
    os.replace(tmp, cached)
    return melodies, skipped


def load_corpus_melodies(limit: int, collections: Sequence[str] = COLLECTIONS,
                         workers: int = 1) -> tuple[list[Melody], Counter]:
    """Up to ``limit`` real melodies, taken from each collection in turn (files in sorted order), and the count of
    tunes skipped by reason. Each corpus file is parsed once and cached (:func:`cache_dir`); ``workers`` processes
    parse files not cached yet (the melodies are the same for any number)."""
    import contextlib

    if limit <= 0:
        return [], Counter()
    per_collection = {c: _corpus_files(c) for c in collections}
    unknown = [c for c, files in per_collection.items() if not files]
    if unknown:
        raise ValueError(f"music21's corpus has no files for {unknown}; allowed collections: {list(COLLECTIONS)}")
    share = int(np.ceil(limit / len(collections)))
    melodies: list[Melody] = []
    skipped: Counter = Counter()
    chunk = 4 * max(1, workers)
    with _pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for collection, files in per_collection.items():
            taken: list[Melody] = []
            for start in range(0, len(files), chunk):
                batch = files[start:start + chunk]
                parsed = (pool.map(_parse_cached, batch, [collection] * len(batch)) if pool is not None
                          else [_parse_cached(path, collection) for path in batch])
                for found, lost in parsed:  # in file order, up to the file that completes the share
                    if len(taken) >= share:
                        break
                    taken.extend(found)
                    skipped.update(lost)
                if len(taken) >= share:
                    break
            melodies.extend(taken[:share])
    return melodies[:limit], skipped


def _pool(workers: int):  # noqa: ANN202 - a ProcessPoolExecutor
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: a forked child of a process whose torch / OpenMP threads are running can deadlock
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


# ------------------------------------------------------------------------------------------------- generated

#: one bar's rhythm, in quarter notes, by meter
_RHYTHMS = {
    2: ((1.0, 1.0), (0.5, 0.5, 1.0), (1.0, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5), (1.5, 0.5), (2.0,)),
    3: ((1.0, 1.0, 1.0), (2.0, 1.0), (1.0, 0.5, 0.5, 1.0), (0.5, 0.5, 1.0, 1.0), (1.5, 0.5, 1.0), (3.0,)),
    4: ((1.0, 1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 1.0, 2.0), (0.5, 0.5, 1.0, 1.0, 1.0), (1.5, 0.5, 1.0, 1.0),
        (1.0, 0.5, 0.5, 1.0, 1.0), (2.0, 2.0), (0.5, 0.5, 0.5, 0.5, 1.0, 1.0)),
}


def generate_melody(rng: np.random.Generator, melody_id: str, bars: int = 8) -> Melody:
    """A tune of ``bars`` bars in C major or A minor (the arranger transposes it): a stepwise random walk on the
    scale with leaps now and then, a chord tone of the tonic or dominant on each downbeat, the last note the
    tonic held to the end of the bar."""
    meter = METERS[int(rng.integers(len(METERS)))]
    mode = ("major", "minor")[int(rng.integers(2))]
    tonic_midi = 60 if mode == "major" else 57
    scale = SCALES[mode]
    degrees_per_octave = len(scale)

    def midi_of(degree: int) -> int:
        octave, step = divmod(degree, degrees_per_octave)
        return tonic_midi + 12 * octave + scale[step]

    notes = []
    degree = int(rng.choice([0, 2, 4]))
    onset = 0.0
    for bar in range(bars):
        last_bar = bar == bars - 1
        rhythm = (float(meter[0]),) if last_bar else _RHYTHMS[meter[0]][int(rng.integers(len(_RHYTHMS[meter[0]])))]
        for position, duration in enumerate(rhythm):
            if last_bar:
                degree = 0 if abs(degree) < 4 else 7 * int(np.sign(degree))
            elif position == 0:
                chord = (0, 2, 4) if bar % 4 in (0, 3) else (4, 6, 8)  # tonic, then dominant, triads
                choices = [c + 7 * o for c in chord for o in (-1, 0, 1) if -3 <= c + 7 * o <= 9]
                degree = min(choices, key=lambda c: abs(c - degree) + 0.01 * c)
            else:
                step = int(rng.choice([-2, -1, -1, 1, 1, 2, 3, -3], p=[.1, .25, .2, .2, .15, .05, .03, .02]))
                degree = int(np.clip(degree + step, -3, 9))
            notes.append((round(onset, 4), round(duration, 4), midi_of(degree)))
            onset += duration
    return Melody(melody_id, tuple(notes), meter, tonic_midi % 12, mode, "an original tune")

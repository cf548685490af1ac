"""Arrange a melody excerpt: transpose it to a key and an instrument's register, harmonise each bar with a diatonic
triad, write a bass line and a General MIDI drum pattern (channel 10) that fit the meter, all at a tempo.

Everything here is deterministic: the same :class:`Arrangement` always gives the same notes.

Example::

    notes = arrange(Arrangement(melody, start_bar=0, tonic=2, tempo_bpm=110, seconds=6.0,
                                melody_program=73, chord_program=24, bass_program=None, drums=True))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokenlm.data.sources.music.instruments import INSTRUMENT_BY_PROGRAM, family_of
from tokenlm.data.sources.music.melodies import Melody
from tokenlm.data.synth.music import SCALES

DRUM_CHANNEL = 9
MELODY_CHANNEL, CHORD_CHANNEL, BASS_CHANNEL = 0, 1, 2
#: GM percussion keys
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE, SIDE_STICK = 36, 38, 42, 46, 49, 51, 37
#: chord families that hold their chords for the whole bar (the rest strike them on every beat)
SUSTAINED_FAMILIES = ("organ", "strings", "ensemble", "brass", "synth pad")
#: diatonic triads by scale degree (0-based) and the preference the harmoniser gives each (tonic, dominant, ...)
_DEGREE_PREFERENCE = {0: 0.30, 4: 0.25, 3: 0.20, 5: 0.10, 1: 0.05, 2: 0.0, 6: -0.2}


@dataclass(frozen=True)
class Note:
    """One note: channel, MIDI pitch, velocity, and start / end in seconds."""

    channel: int
    pitch: int
    velocity: int
    start: float
    end: float


@dataclass(frozen=True)
class Arrangement:
    """What to play: a melody excerpt from ``start_bar``, in ``tonic`` (pitch class) and the melody's mode, at
    ``tempo_bpm`` quarter notes per minute, for ``seconds``; the programs of melody, chords and bass (None: not
    played); drums on or off with ``drum_pattern`` choosing among the meter's patterns; ``dynamics`` 0..1 scales
    velocities."""

    melody: Melody
    start_bar: int
    tonic: int
    tempo_bpm: float
    seconds: float
    melody_program: int
    chord_program: int | None
    bass_program: int | None
    drums: bool
    drum_pattern: int = 0
    dynamics: float = 0.8

    @property
    def mode(self) -> str:
        return self.melody.mode


def _transposition(melody: Melody, tonic: int, centre: int) -> int:
    """Semitones that move the melody to ``tonic`` with its median pitch nearest ``centre``."""
    shift = (tonic - melody.tonic) % 12
    median = float(np.median([pitch for _, _, pitch in melody.notes]))
    candidates = [shift + 12 * octave for octave in range(-5, 6)]
    return min(candidates, key=lambda s: abs(median + s - centre))


def excerpt(melody: Melody, start_bar: int, beats: float) -> list[tuple[float, float, int]]:
    """The melody's notes from ``start_bar`` over ``beats`` quarter notes, looping back to its start when it
    ends; onsets relative to the excerpt's start, durations cut at its end."""
    length = melody.bars * melody.bar_length
    start = (start_bar % max(1, melody.bars)) * melody.bar_length
    out = []
    repeat = 0
    while repeat * length < start + beats:
        for onset, duration, pitch in melody.notes:
            at = onset + repeat * length - start
            if 0 <= at < beats:
                out.append((at, min(duration, beats - at), pitch))
        repeat += 1
    return sorted(out)


def triads(tonic: int, mode: str) -> list[tuple[int, tuple[int, int, int]]]:
    """``[(degree, (root, third, fifth) pitch classes)]`` of the key's diatonic triads; in minor the dominant is
    major (the harmonic minor's leading tone), as in common-practice harmony."""
    scale = SCALES[mode]
    out = []
    for degree in range(7):
        pcs = [(tonic + scale[(degree + step) % 7]) % 12 for step in (0, 2, 4)]
        if mode == "minor" and degree == 4:
            pcs[1] = (pcs[1] + 1) % 12  # v -> V
        out.append((degree, (pcs[0], pcs[1], pcs[2])))
    return out


def harmonise(notes: list[tuple[float, float, int]], bar_length: float, bars: int, tonic: int,
              mode: str) -> list[tuple[int, int, int]]:
    """One triad per bar: the diatonic triad covering the most melody time in the bar (downbeats weigh double),
    with a preference for tonic, dominant and subdominant; the tonic on the first and last bar when it fits."""
    chords = []
    options = triads(tonic, mode)
    for bar in range(bars):
        low, high = bar * bar_length, (bar + 1) * bar_length
        weight = np.zeros(12)
        for onset, duration, pitch in notes:
            overlap = min(onset + duration, high) - max(onset, low)
            if overlap > 0:
                weight[pitch % 12] += overlap * (2.0 if abs(onset - low) < 1e-6 else 1.0)
        total = weight.sum() or 1.0
        scores = []
        for degree, pcs in options:
            score = sum(weight[pc] for pc in pcs) / total + _DEGREE_PREFERENCE[degree]
            if degree == 0 and bar in (0, bars - 1):
                score += 0.15
            scores.append(score)
        chords.append(options[int(np.argmax(scores))][1])
    return chords


def _voice(pcs: tuple[int, int, int], low: int = 55) -> list[int]:
    """Close-position voicing of a triad from the first pitch at or above ``low``."""
    root = low + (pcs[0] - low) % 12
    return sorted(root + (pc - pcs[0]) % 12 for pc in pcs)


#: drum patterns per beats in the bar: (key, beat position in quarter notes, velocity)
DRUM_PATTERNS: dict[int, tuple[tuple[tuple[int, float, int], ...], ...]] = {
    4: (
        ((KICK, 0, 110), (KICK, 2, 100), (SNARE, 1, 100), (SNARE, 3, 100),
         *((CLOSED_HAT, h / 2, 70) for h in range(8))),
        ((KICK, 0, 110), (KICK, 2.5, 90), (SNARE, 1, 100), (SNARE, 3, 100),
         *((CLOSED_HAT, float(h), 75) for h in range(4)), (OPEN_HAT, 3.5, 70)),
        ((KICK, 0, 110), (KICK, 1.5, 85), (KICK, 2, 100), (SNARE, 1, 105), (SNARE, 3, 105),
         *((RIDE, h / 2, 65) for h in range(8))),
    ),
    3: (
        ((KICK, 0, 110), (SNARE, 1, 85), (SNARE, 2, 85), *((CLOSED_HAT, float(h), 70) for h in range(3))),
        ((KICK, 0, 110), (SIDE_STICK, 1, 80), (SIDE_STICK, 2, 80), *((RIDE, h / 2, 60) for h in range(6))),
    ),
    2: (
        ((KICK, 0, 110), (SNARE, 1, 100), *((CLOSED_HAT, h / 2, 70) for h in range(4))),
        ((KICK, 0, 110), (KICK, 1.5, 80), (SNARE, 1, 100), *((CLOSED_HAT, h / 2, 65) for h in range(4))),
    ),
}


def _accent(beat: float, bar_length: float) -> int:
    """Metric accent of a note starting at ``beat``: stronger on the downbeat, then on the beats, weaker between
    them, as players phrase a tune."""
    position = beat % bar_length
    if abs(position) < 1e-6 or abs(position - bar_length) < 1e-6:
        return 12
    return 4 if abs(position - round(position)) < 1e-6 else -8


def melody_pitches(arrangement: Arrangement) -> list[tuple[float, float, int]]:
    """The melody as played: ``[(start_s, end_s, midi)]`` after transposition, at the arrangement's tempo."""
    beat_s = 60.0 / arrangement.tempo_bpm
    beats = arrangement.seconds / beat_s
    centre = INSTRUMENT_BY_PROGRAM[arrangement.melody_program].centre
    shift = _transposition(arrangement.melody, arrangement.tonic, centre)
    return [(onset * beat_s, (onset + duration) * beat_s, pitch + shift)
            for onset, duration, pitch in excerpt(arrangement.melody, arrangement.start_bar, beats)]


def arrange(arrangement: Arrangement) -> list[Note]:
    """Every note of the arrangement, sorted by start time."""
    a = arrangement
    beat_s = 60.0 / a.tempo_bpm
    bar_length = a.melody.bar_length
    beats = a.seconds / beat_s
    bars = int(np.ceil(beats / bar_length - 1e-9))
    velocity = int(round(60 + 50 * a.dynamics))
    out: list[Note] = []
    melody = melody_pitches(a)
    for start, end, pitch in melody:
        out.append(Note(MELODY_CHANNEL, pitch, velocity + _accent(start / beat_s, bar_length), start,
                        end - 0.02 * beat_s))
    in_beats = [(s / beat_s, (e - s) / beat_s, p) for s, e, p in melody]
    chords = harmonise(in_beats, bar_length, bars, a.tonic, a.mode)
    beats_per_bar = int(round(bar_length))
    if a.chord_program is not None:
        sustained = family_of(a.chord_program) in SUSTAINED_FAMILIES
        for bar, pcs in enumerate(chords):
            for pitch in _voice(pcs):
                if sustained:
                    out.append(Note(CHORD_CHANNEL, pitch, velocity - 25, bar * bar_length * beat_s,
                                    (bar + 1) * bar_length * beat_s - 0.05 * beat_s))
                else:
                    for beat in range(beats_per_bar):
                        at = (bar * bar_length + beat) * beat_s
                        out.append(Note(CHORD_CHANNEL, pitch, velocity - 30 + (8 if beat == 0 else 0), at,
                                        at + 0.9 * beat_s))
    if a.bass_program is not None:
        for bar, pcs in enumerate(chords):
            root = 36 + (pcs[0] - 36) % 12
            fifth = root + 7
            # a note on every beat (root, fifth, octave, fifth): the bass keeps the pulse the tempo label names
            steps = {4: ((0, root), (1, fifth), (2, root + 12), (3, fifth)), 3: ((0, root), (1, fifth), (2, fifth)),
                     2: ((0, root), (1, fifth))}[beats_per_bar]
            for beat, pitch in steps:
                at = (bar * bar_length + beat) * beat_s
                length = (beats_per_bar / len(steps)) * beat_s
                out.append(Note(BASS_CHANNEL, pitch, velocity - 10, at, at + 0.9 * length))
    if a.drums:
        patterns = DRUM_PATTERNS[beats_per_bar]
        pattern = patterns[a.drum_pattern % len(patterns)]
        for bar in range(bars):
            for key, position, drum_velocity in pattern:
                at = (bar * bar_length + position) * beat_s
                out.append(Note(DRUM_CHANNEL, key, int(round(drum_velocity * (0.6 + 0.4 * a.dynamics))), at,
                                at + 0.1))
            if bar == 0:
                out.append(Note(DRUM_CHANNEL, CRASH, 90, 0.0, 0.1))
    return sorted((n for n in out if n.start < a.seconds), key=lambda n: (n.start, n.channel, n.pitch))

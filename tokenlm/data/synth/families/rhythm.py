"""Rhythmic families: a metronome at a tempo, and simple drum patterns (kick / snare / hi-hat) at a tempo."""

from __future__ import annotations

import math

import numpy as np

from tokenlm.data.synth import captions as words
from tokenlm.data.synth.families.base import Family, Labels, choose, finish_level, num_samples
from tokenlm.data.synth.signals import click, hihat, kick, place, snare

CLICK_SOUNDS = ("click", "woodblock", "beep")
#: pattern -> instrument -> eighth-note steps (of 8 per bar) where it plays
DRUM_PATTERNS = {
    "rock": {"kick": (0, 4), "snare": (2, 6), "hihat": (0, 1, 2, 3, 4, 5, 6, 7)},
    "four_on_the_floor": {"kick": (0, 2, 4, 6), "snare": (2, 6), "hihat": (1, 3, 5, 7)},
    "kick_snare": {"kick": (0, 4), "snare": (2, 6)},
    "kick_hihat": {"kick": (0, 2, 4, 6), "hihat": (0, 1, 2, 3, 4, 5, 6, 7)},
}
PATTERN_WORDS = {"rock": ("rock", "straight rock"), "four_on_the_floor": ("four-on-the-floor", "dance"),
                 "kick_snare": ("simple", "basic"), "kick_hihat": ("minimal", "driving")}
DRUM_LEVELS = {"kick": 1.0, "snare": 0.8, "hihat": 0.35}
DRUM_ORDER = ("kick", "snare", "hihat")


def _tempo(rng: np.random.Generator, given: Labels, duration: float, beats: int, low: int, high: int) -> int:
    """A tempo in [low, high] bpm at which ``beats`` beats fit into ``duration`` (given wins)."""
    if "tempo_bpm" in given:
        return int(round(given["tempo_bpm"]))
    fastest_needed = math.ceil(beats * 60.0 / max(duration - 0.3, 1e-3))
    return int(rng.integers(max(low, min(fastest_needed, high)), high + 1))


def _tempo_phrase(rng: np.random.Generator, bpm: int) -> str:
    return f"{bpm} " + words.pick(rng, ("bpm", "BPM", "beats per minute"))


class Clicks(Family):
    """A metronome: clicks, woodblock hits or beeps on every beat at 60-180 bpm (at least 6 beats)."""

    name = "clicks"
    min_duration = 2.5

    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        given = given or {}
        return {"family": self.name, "sound": choose(rng, given, "sound", CLICK_SOUNDS),
                "tempo_bpm": _tempo(rng, given, duration, 6, 60, 180)}

    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        out = np.zeros(num_samples(duration, sample_rate))
        sound = click(sample_rate, labels["sound"])
        period = 60.0 / labels["tempo_bpm"]
        for time in np.arange(float(rng.uniform(0.05, 0.2)), duration - 0.05, period):
            place(out, sound * float(rng.uniform(0.85, 1.0)), float(time), sample_rate)
        return finish_level(out, labels, rng, sample_rate)

    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        sound = words.pick(rng, words.CLICK_WORDS[labels["sound"]])
        tempo = _tempo_phrase(rng, labels["tempo_bpm"])
        template = int(rng.integers(4))
        if template == 0:
            return f"a metronome {sound} at {tempo}"
        if template == 1:
            return f"{sound}s at {tempo}"
        if template == 2:
            return f"a steady {sound} pulse, {tempo}"
        return f"{words.with_article(sound)} ticking at a tempo of {tempo}"

    def heldout(self, labels: Labels) -> bool:
        return (CLICK_SOUNDS.index(labels["sound"]) + int(labels["tempo_bpm"]) // 20) % 4 == 0


class Drums(Family):
    """A one-bar drum pattern (kick / snare / hi-hat on an eighth-note grid) looped at 70-160 bpm."""

    name = "drums"
    min_duration = 3.5

    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        given = given or {}
        patterns = tuple(DRUM_PATTERNS)
        if "drums" in given:
            wanted = set(given["drums"])
            patterns = tuple(p for p in DRUM_PATTERNS if set(DRUM_PATTERNS[p]) == wanted) or patterns
        pattern = choose(rng, given, "drum_pattern", patterns)
        return {"family": self.name, "drum_pattern": pattern,
                "drums": [name for name in DRUM_ORDER if name in DRUM_PATTERNS[pattern]],
                "tempo_bpm": _tempo(rng, given, duration, 8, 70, 160)}

    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        out = np.zeros(num_samples(duration, sample_rate))
        step_s = 30.0 / labels["tempo_bpm"]  # an eighth note
        pattern = DRUM_PATTERNS[labels["drum_pattern"]]
        start = float(rng.uniform(0.05, 0.15))
        sounds = {"kick": kick(sample_rate)}
        for step in range(int((duration - start) / step_s) + 1):
            time = start + step * step_s
            for name, steps in pattern.items():
                if step % 8 in steps:
                    hit = sounds["kick"] if name == "kick" else (snare if name == "snare" else hihat)(rng, sample_rate)
                    place(out, hit * DRUM_LEVELS[name] * float(rng.uniform(0.9, 1.0)), time, sample_rate)
        return finish_level(out, labels, rng, sample_rate)

    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        names = [words.pick(rng, words.DRUM_WORDS[name]) for name in labels["drums"]]
        kit = " and ".join(names) if len(names) == 2 else f"{names[0]}, {names[1]} and {names[2]}"
        style = words.pick(rng, PATTERN_WORDS[labels["drum_pattern"]])
        tempo = _tempo_phrase(rng, labels["tempo_bpm"])
        template = int(rng.integers(3))
        if template == 0:
            return f"{words.with_article(style)} drum beat at {tempo} with {kit}"
        if template == 1:
            return f"{kit} playing {words.with_article(style)} groove at {tempo}"
        return f"drums at {tempo}: {kit}"

    def heldout(self, labels: Labels) -> bool:
        return (tuple(DRUM_PATTERNS).index(labels["drum_pattern"]) + int(labels["tempo_bpm"]) // 20) % 4 == 0

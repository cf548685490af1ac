"""Two distinct sound events in a stated order ("a beep, then a burst of noise")."""

from __future__ import annotations

import numpy as np

from tokenlm.data.synth import captions as words
from tokenlm.data.synth.families.base import Family, Labels, finish_level, num_samples
from tokenlm.data.synth.signals import envelope, oscillator, place

EVENTS = ("beep", "noise", "thud", "chirp")


def event_sound(kind: str, rng: np.random.Generator, sample_rate: int, length_s: float) -> np.ndarray:
    """One event of ``length_s`` seconds at unit RMS: a beep (700-1400 Hz sine), a white-noise burst, a low
    thud (120 -> 45 Hz glide, fast decay) or a chirp (a sine rising by ~1.6 octaves)."""
    n = int(length_s * sample_rate)
    t = np.arange(n) / sample_rate
    if kind == "beep":
        sound = oscillator(float(rng.uniform(700, 1400)), "sine", sample_rate, n)
        sound = sound * envelope(n, sample_rate, "sustained")
    elif kind == "noise":
        sound = rng.standard_normal(n) * envelope(n, sample_rate, "sustained")
    elif kind == "thud":
        freq = 45.0 + 75.0 * np.exp(-t / 0.05)
        sound = oscillator(freq, "sine", sample_rate, n) * envelope(n, sample_rate, "plucked", decay_s=0.1)
    elif kind == "chirp":
        low = float(rng.uniform(400, 600))
        freq = low * 3.0 ** (t / t[-1])
        sound = oscillator(freq, "sine", sample_rate, n) * envelope(n, sample_rate, "sustained")
    else:
        raise ValueError(f"unknown event {kind!r}; allowed: {list(EVENTS)}")
    return sound / (np.sqrt(np.mean(sound**2)) + 1e-12)


class Sequence(Family):
    """Two different events, one after the other, separated by a short silence."""

    name = "sequence"
    min_duration = 1.2

    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        given = given or {}
        if "order" in given:
            return {"family": self.name, "order": list(given["order"])}
        first, second = rng.choice(len(EVENTS), size=2, replace=False)
        return {"family": self.name, "order": [EVENTS[int(first)], EVENTS[int(second)]]}

    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        out = np.zeros(num_samples(duration, sample_rate))
        start, gap = float(rng.uniform(0.05, 0.2)), float(rng.uniform(0.25, 0.6))
        length = float(rng.uniform(0.25, 0.4))
        scale = min(1.0, (duration - 0.1) / (start + 2 * length + gap))
        start, gap, length = start * scale, gap * scale, length * scale
        for index, kind in enumerate(labels["order"]):
            place(out, event_sound(kind, rng, sample_rate, length), start + index * (length + gap), sample_rate)
        return finish_level(out, labels, rng, sample_rate)

    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        first, second = (words.pick(rng, words.EVENT_PHRASES[kind]) for kind in labels["order"])
        template = int(rng.integers(5))
        if template == 0:
            return f"{first}, then {second}"
        if template == 1:
            return f"{first} followed by {second}"
        if template == 2:
            return f"first {first}, then {second}"
        if template == 3:
            return f"{second} after {first}"
        return f"{first} and then {second}"

    def heldout(self, labels: Labels) -> bool:
        first, second = (EVENTS.index(kind) for kind in labels["order"])
        return (first + 2 * second) % 5 == 0

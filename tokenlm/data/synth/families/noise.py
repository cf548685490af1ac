"""Noise families: steady coloured noise, low rumble or high hiss, and a counted series of bursts or beeps."""

from __future__ import annotations

import numpy as np

from tokenlm.data.synth import captions as words
from tokenlm.data.synth.families.base import Family, Labels, choose, finish_level, num_samples
from tokenlm.data.synth.families.tonal import LOUDNESS_CHOICES, _loud_word, _loudness, _with_loudness
from tokenlm.data.synth.signals import NOISE_COLOURS, band_noise, coloured_noise, envelope, oscillator, place

BANDS = ("low", "high")
BURST_EVENTS = ("noise", "beep")
MAX_COUNT = 6


def _steady(noise: np.ndarray, sample_rate: int) -> np.ndarray:
    """Noise that starts 20 ms in, with a 10 ms fade-in and 40 ms fade-out."""
    start = int(0.02 * sample_rate)
    body = noise[start:] * envelope(noise.shape[0] - start, sample_rate, "sustained")
    return np.concatenate([np.zeros(start), body])


class Noise(Family):
    """Steady white, pink or brown noise, optionally loud or quiet."""

    name = "noise"
    min_duration = 0.5

    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        given = given or {}
        labels = {"family": self.name, "noise_colour": choose(rng, given, "noise_colour", NOISE_COLOURS)}
        return _with_loudness(labels, _loudness(rng, given))

    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        n = num_samples(duration, sample_rate)
        noise = coloured_noise(rng, labels["noise_colour"], n, sample_rate)
        return finish_level(_steady(noise, sample_rate), labels, rng, sample_rate)

    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        colour = words.pick(rng, words.COLOUR_WORDS[labels["noise_colour"]])
        loud = _loud_word(rng, labels)
        template = int(rng.integers(3))
        if template == 0:
            return words.tidy(f"{loud} {colour} noise")
        if template == 1:
            return words.tidy(f"{colour} noise" + (f", {loud}" if loud else ""))
        return words.tidy(f"a constant wash of {loud} {colour} noise")

    def heldout(self, labels: Labels) -> bool:
        loudness = LOUDNESS_CHOICES.index(labels.get("loudness"))
        return (NOISE_COLOURS.index(labels["noise_colour"]) + loudness) % 4 == 0


class NoiseBand(Family):
    """A low rumble (noise below 120-300 Hz) or a high hiss (noise above 3-5 kHz)."""

    name = "noise_band"
    min_duration = 0.5

    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        given = given or {}
        labels = {"family": self.name, "noise_band": choose(rng, given, "noise_band", BANDS)}
        return _with_loudness(labels, _loudness(rng, given))

    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        n = num_samples(duration, sample_rate)
        if labels["noise_band"] == "low":
            cutoff = float(rng.uniform(120, 300))
        else:
            cutoff = float(rng.uniform(3000, min(5000, 0.3 * sample_rate)))
        noise = band_noise(rng, labels["noise_band"], cutoff, n, sample_rate)
        return finish_level(_steady(noise, sample_rate), labels, rng, sample_rate)

    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        phrase = words.pick(rng, words.BAND_PHRASES[labels["noise_band"]])
        loud = _loud_word(rng, labels)
        if rng.random() < 0.5:
            return words.with_article(words.tidy(f"{loud} {phrase}"))
        return words.tidy(f"{phrase}" + (f", {loud}" if loud else ""))

    def heldout(self, labels: Labels) -> bool:
        loudness = LOUDNESS_CHOICES.index(labels.get("loudness"))
        return (BANDS.index(labels["noise_band"]) + loudness) % 3 == 0


class Bursts(Family):
    """A counted series (1-6) of short noise bursts or beeps separated by silence."""

    name = "bursts"
    min_duration = 0.5

    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        given = given or {}
        fit = int(np.clip((duration - 0.1) // 0.3, 1, MAX_COUNT))
        count = int(given["count"]) if "count" in given else int(rng.integers(1, fit + 1))
        return {"family": self.name, "event": choose(rng, given, "event", BURST_EVENTS), "count": count}

    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        n = num_samples(duration, sample_rate)
        count = labels["count"]
        slot = (duration - 0.1) / count
        out = np.zeros(n)
        freq = float(rng.uniform(600, 1500))
        for index in range(count):
            length_s = min(float(rng.uniform(0.08, 0.15)), 0.45 * slot)
            length = int(length_s * sample_rate)
            if labels["event"] == "noise":
                sound = rng.standard_normal(length)
            else:
                sound = oscillator(freq, "sine", sample_rate, length)
            sound *= envelope(length, sample_rate, "sustained") * float(rng.uniform(0.7, 1.0))
            place(out, sound, 0.05 + index * slot + float(rng.uniform(0, 0.2 * slot)), sample_rate)
        return finish_level(out, labels, rng, sample_rate)

    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        count, event = labels["count"], labels["event"]
        many = count_word = words.count_phrase(count)
        if count == 1:
            many = words.pick(rng, ("a single", "one"))
        template = int(rng.integers(3))
        if event == "noise":
            if template == 0:
                return f"{many} short burst{'s' if count > 1 else ''} of noise"
            if template == 1:
                return f"white noise bursting {words.times_phrase(rng, count)}"
            return f"{count if rng.random() < 0.5 else count_word} noise burst{'s' if count > 1 else ''} in a row"
        if template == 0:
            return f"{many} short beep{'s' if count > 1 else ''}"
        if template == 1:
            return f"a beep sounding {words.times_phrase(rng, count)}"
        return f"{count if rng.random() < 0.5 else count_word} quick beep{'s' if count > 1 else ''} in a row"

    def heldout(self, labels: Labels) -> bool:
        return (labels["count"] + BURST_EVENTS.index(labels["event"])) % 4 == 0

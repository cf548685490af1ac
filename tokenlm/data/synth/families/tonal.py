"""Pitched families: single tones, triads, short melodies in a key, rising and falling sweeps."""

from __future__ import annotations

import numpy as np

from tokenlm.data.synth import captions as words
from tokenlm.data.synth.families.base import Family, Labels, choose, finish_level, num_samples
from tokenlm.data.synth.music import (
    PITCH_CLASSES,
    SCALES,
    TRIADS,
    midi_to_hz,
    note_name,
    parse_pitch_class,
)
from tokenlm.data.synth.signals import WAVEFORMS, envelope, oscillator

ENVELOPES = ("plucked", "sustained")
LOUDNESS_CHOICES = ("loud", "quiet", None)
#: MIDI range of single tones (A2 = 110 Hz .. A5 = 880 Hz)
TONE_RANGE = (45, 81)
#: scale degrees (0 = tonic) of the tonic triad across the melodies' range
TRIAD_DEGREES = (-3, 0, 2, 4, 7, 9)


def _loudness(rng: np.random.Generator, given: Labels) -> str | None:
    """The loudness label: given, or loud / quiet / unstated with equal odds."""
    if "loudness" in given:
        return given["loudness"]
    return LOUDNESS_CHOICES[int(rng.integers(3))]


def _with_loudness(labels: Labels, loudness: str | None) -> Labels:
    """``labels`` plus ``loudness`` when it is stated."""
    if loudness is not None:
        labels["loudness"] = loudness
    return labels


def _loud_word(rng: np.random.Generator, labels: Labels) -> str:
    """A loudness adjective, or ``""`` when the clip's loudness is unstated."""
    loudness = labels.get("loudness")
    return words.pick(rng, words.LOUDNESS_WORDS[loudness]) if loudness else ""


class Tone(Family):
    """One note: waveform, pitch (note name or Hz), plucked or sustained, optionally loud or quiet."""

    name = "tone"
    min_duration = 0.5

    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        given = given or {}
        midi = int(rng.integers(TONE_RANGE[0], TONE_RANGE[1] + 1))
        pitch_hz = float(given.get("pitch_hz") or round(float(midi_to_hz(midi)), 2))
        labels = {
            "family": self.name,
            "waveform": choose(rng, given, "waveform", WAVEFORMS),
            "pitch_hz": pitch_hz,
            "note": note_name(round(69 + 12 * np.log2(pitch_hz / 440.0))),
            "envelope": choose(rng, given, "envelope", ENVELOPES),
        }
        return _with_loudness(labels, _loudness(rng, given))

    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        n = num_samples(duration, sample_rate)
        start = int(0.03 * sample_rate)
        decay = float(rng.uniform(0.35, 0.7)) * min(1.0, duration / 2.0)
        body = oscillator(labels["pitch_hz"], labels["waveform"], sample_rate, n - start)
        body *= envelope(n - start, sample_rate, labels["envelope"], decay_s=decay)
        return finish_level(np.concatenate([np.zeros(start), body]), labels, rng, sample_rate)

    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        wave = words.pick(rng, words.WAVE_WORDS[labels["waveform"]])
        env = words.pick(rng, words.ENVELOPE_WORDS[labels["envelope"]])
        loud = _loud_word(rng, labels)
        if rng.random() < 0.5:
            pitch_value = labels["note"]
            pitch = words.pick(rng, ("at", "playing", "pitched at", "tuned to")) + f" {pitch_value}"
        else:
            pitch_value = f"{round(labels['pitch_hz'])} Hz"
            pitch = words.pick(rng, ("at", "of", "around", "at a pitch of")) + f" {pitch_value}"
        template = int(rng.integers(4))
        if template == 0:
            text = f"{words.with_article(words.tidy(f'{loud} {env} {wave}'))} tone {pitch}"
        elif template == 1:
            text = f"{wave} wave {pitch}, {env}" + (f" and {loud}" if loud else "")
        elif template == 2:
            adverb = words.pick(rng, words.LOUDNESS_ADVERBS[labels["loudness"]]) if loud else ""
            text = f"{words.with_article(f'{env} {wave}')} note {pitch}, played {adverb}" if adverb else \
                f"{words.with_article(f'{env} {wave}')} note {pitch}"
        else:
            text = f"{pitch_value} on {words.with_article(wave)} oscillator, {env}" + (f", {loud}" if loud else "")
        return words.tidy(text)

    def heldout(self, labels: Labels) -> bool:
        pitch_class = round(12 * np.log2(labels["pitch_hz"] / 440.0)) % 12
        return (WAVEFORMS.index(labels["waveform"]) + pitch_class) % 5 == 0


class Chord(Family):
    """A major or minor triad in root position (root in octave 3) on a synth waveform."""

    name = "chord"
    min_duration = 1.0
    waveforms = ("sine", "triangle", "sawtooth")

    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        given = given or {}
        root = PITCH_CLASSES[int(rng.integers(12))]
        quality = choose(rng, given, "quality", tuple(TRIADS))
        if "chord" in given:
            root, quality = given["chord"].split()
        labels = {
            "family": self.name,
            "chord": f"{root} {quality}",
            "waveform": choose(rng, given, "waveform", self.waveforms),
            "envelope": choose(rng, given, "envelope", ENVELOPES),
        }
        return _with_loudness(labels, _loudness(rng, given))

    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        root_name, quality = labels["chord"].split()
        root = 48 + parse_pitch_class(root_name)
        n = num_samples(duration, sample_rate)
        start = int(0.03 * sample_rate)
        body = sum(oscillator(float(midi_to_hz(root + step)), labels["waveform"], sample_rate, n - start,
                              max_harmonics=12) for step in TRIADS[quality])
        body = body * envelope(n - start, sample_rate, labels["envelope"], decay_s=float(rng.uniform(0.6, 1.2)))
        return finish_level(np.concatenate([np.zeros(start), body]), labels, rng, sample_rate)

    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        root_name, quality = labels["chord"].split()
        chord = f"{words.spell_pitch_class(rng, root_name)} {quality}"
        wave = words.pick(rng, words.WAVE_WORDS[labels["waveform"]])
        env = words.pick(rng, words.ENVELOPE_WORDS[labels["envelope"]])
        loud = _loud_word(rng, labels)
        template = int(rng.integers(4))
        if template == 0:
            text = f"{words.with_article(f'{env} {chord}')} chord" + (f", {loud}" if loud else "")
        elif template == 1:
            text = f"{words.with_article(chord)} triad on {words.with_article(wave)} synth, {env}"
            text += f" and {loud}" if loud else ""
        elif template == 2:
            described = words.with_article(words.tidy(f"{loud} {env} {chord}"))
            text = f"{described} chord on {words.with_article(wave)} synth"
        else:
            text = f"{env} {wave} chord: {chord}" + (f", {loud}" if loud else "")
        return words.tidy(text)

    def heldout(self, labels: Labels) -> bool:
        root_name, quality = labels["chord"].split()
        return (parse_pitch_class(root_name) + tuple(TRIADS).index(quality)) % 4 == 0


class Melody(Family):
    """A short plucked melody in a major or minor key: it opens with the tonic triad and ends on the tonic."""

    name = "melody"
    min_duration = 2.0

    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        given = given or {}
        key = given.get("key") or f"{PITCH_CLASSES[int(rng.integers(12))]} {choose(rng, {}, 'mode', tuple(SCALES))}"
        return {"family": self.name, "key": key, "waveform": choose(rng, given, "waveform", WAVEFORMS)}

    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        root_name, mode = labels["key"].split()
        tonic = 60 + parse_pitch_class(root_name)
        scale = SCALES[mode]
        note_s = float(rng.uniform(0.2, 0.4))
        count = int(np.clip((duration - 0.2) / note_s - 1, 4, 12))
        note_s = min(note_s, (duration - 0.2) / (count + 1))
        degrees = [0, 2, 4]
        while len(degrees) < count - 1:
            if rng.random() < 0.5:  # a tonic-triad tone near the last note: the key stays audible
                near = sorted((d for d in TRIAD_DEGREES if d != degrees[-1]), key=lambda d: abs(d - degrees[-1]))
                degrees.append(int(near[int(rng.integers(2))]))
            else:
                degrees.append(int(np.clip(degrees[-1] + rng.choice((-2, -1, 1, 2)), -3, 9)))
        degrees = degrees[: count - 1] + [0 if rng.random() < 0.5 else 7]
        n = num_samples(duration, sample_rate)
        out = np.zeros(n)
        for index, degree in enumerate(degrees):
            midi = tonic + 12 * (degree // 7) + scale[degree % 7]
            length = int((2 if index == len(degrees) - 1 else 1) * note_s * sample_rate)
            start = int((0.05 + index * note_s) * sample_rate)
            length = min(length, n - start)
            tone = oscillator(float(midi_to_hz(midi)), labels["waveform"], sample_rate, length, max_harmonics=12)
            out[start:start + length] += tone * envelope(length, sample_rate, "plucked", decay_s=note_s)
        return finish_level(out, labels, rng, sample_rate)

    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        root_name, mode = labels["key"].split()
        key = f"{words.spell_pitch_class(rng, root_name)} {mode}"
        wave = words.pick(rng, words.WAVE_WORDS[labels["waveform"]])
        template = int(rng.integers(4))
        if template == 0:
            return f"a short {wave} melody in {key}"
        if template == 1:
            return f"a simple tune in the key of {key}, played on {words.with_article(wave)} synth"
        if template == 2:
            return f"{words.with_article(key)} melody on {words.with_article(wave)} synth"
        return f"{wave} wave melody, key of {key}"

    def heldout(self, labels: Labels) -> bool:
        root_name, mode = labels["key"].split()
        return (parse_pitch_class(root_name) + 2 * tuple(SCALES).index(mode)) % 4 == 1


class Sweep(Family):
    """A tone gliding exponentially up or down between two frequencies."""

    name = "sweep"
    min_duration = 1.0
    directions = ("rising", "falling")

    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        given = given or {}
        low = int(round(rng.uniform(150, 400), -1))
        high = int(round(low * 2 ** rng.uniform(1.5, 2.5), -1))
        return {
            "family": self.name,
            "direction": choose(rng, given, "direction", self.directions),
            "waveform": choose(rng, given, "waveform", WAVEFORMS),
            "low_hz": int(given.get("low_hz", low)),
            "high_hz": int(given.get("high_hz", high)),
        }

    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        n = num_samples(duration, sample_rate)
        start = int(rng.uniform(0.02, 0.1) * sample_rate)
        length = int(min(n - start, rng.uniform(0.7, 1.0) * (n - start)))
        low, high = float(labels["low_hz"]), float(labels["high_hz"])
        if labels["direction"] == "falling":
            low, high = high, low
        freq = low * (high / low) ** (np.arange(length) / length)  # [length] exponential glide
        body = oscillator(freq, labels["waveform"], sample_rate, length) * envelope(length, sample_rate, "sustained")
        out = np.zeros(n)
        out[start:start + length] = body
        return finish_level(out, labels, rng, sample_rate)

    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        direction = labels["direction"]
        wave = words.pick(rng, words.WAVE_WORDS[labels["waveform"]])
        adjective = words.pick(rng, words.DIRECTION_ADJECTIVES[direction])
        adverb = words.pick(rng, words.DIRECTION_ADVERBS[direction])
        start, end = (labels["low_hz"], labels["high_hz"])
        if direction == "falling":
            start, end = end, start
        template = int(rng.integers(4))
        if template == 0:
            return f"{words.with_article(f'{adjective} {wave}')} sweep"
        if template == 1:
            return f"{words.with_article(wave)} tone sweeping {adverb}"
        if template == 2:
            return f"{words.with_article(wave)} glide {adverb} from {start} Hz to {end} Hz"
        return f"a siren-like {wave} tone, {adjective}"

    def heldout(self, labels: Labels) -> bool:
        return (self.directions.index(labels["direction"]) + WAVEFORMS.index(labels["waveform"])) % 4 == 0

"""The family interface: sample labels, render audio from labels, write a caption, say whether a label
combination belongs to the held-out split."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from tokenlm.data.synth.signals import normalize_loudness

Labels = dict[str, Any]

#: target loudness ranges (LUFS) by loudness label; no label gives the middle range
LOUDNESS_RANGES = {"loud": (-18.0, -14.0), "quiet": (-38.0, -32.0), None: (-28.0, -20.0)}


class Family(ABC):
    """A kind of synthetic clip. Subclasses set ``name`` and ``min_duration`` and implement the methods.

    ``sample(rng, duration, given)`` returns semantic labels (``given`` values win, so a parsed caption can be
    completed); ``render(labels, rng, sample_rate, duration)`` returns ``[N]`` float64 audio;
    ``caption(labels, rng)`` a sentence; ``heldout(labels)`` whether the labels' attribute combination is
    reserved for the held-out split.
    """

    name: str = ""
    min_duration: float = 1.0

    @abstractmethod
    def sample(self, rng: np.random.Generator, duration: float, given: Labels | None = None) -> Labels:
        """Semantic labels for a clip of ``duration`` seconds."""

    @abstractmethod
    def render(self, labels: Labels, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
        """``[N]`` audio that matches ``labels``, N = round(duration x sample_rate)."""

    @abstractmethod
    def caption(self, labels: Labels, rng: np.random.Generator) -> str:
        """A natural-language description of ``labels``."""

    @abstractmethod
    def heldout(self, labels: Labels) -> bool:
        """True when the labels' attribute combination is reserved for the held-out split."""


def choose(rng: np.random.Generator, given: Labels, key: str, options) -> Any:
    """``given[key]`` when present, else a uniform choice from ``options``."""
    if key in given and given[key] is not None:
        return given[key]
    return options[int(rng.integers(len(options)))]


def finish_level(wav: np.ndarray, labels: Labels, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Normalise ``wav`` to a loudness drawn from the range of ``labels["loudness"]`` (if any)."""
    low, high = LOUDNESS_RANGES[labels.get("loudness")]
    out, _ = normalize_loudness(wav, sample_rate, float(rng.uniform(low, high)))
    return out


def num_samples(duration: float, sample_rate: int) -> int:
    """Samples in ``duration`` seconds."""
    return int(round(duration * sample_rate))

"""What an embedder and a classifier provide, and the shared helpers (weights-folder checks, resampling)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import julius
import numpy as np
import torch


def find_weights(directory: str | Path, patterns: Sequence[str], what: str) -> Path:
    """The first file in ``directory`` matching one of the glob ``patterns``.

    Raises:
        FileNotFoundError: naming the folder and the files expected there.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{what} weights folder '{directory}' does not exist; it must hold {list(patterns)}")
    for pattern in patterns:
        matches = sorted(directory.glob(pattern))
        if matches:
            return matches[0]
    raise FileNotFoundError(f"no {what} weights in '{directory}': expected a file matching one of {list(patterns)}")


def to_mono(wav: np.ndarray | torch.Tensor, sample_rate: int, target_rate: int) -> torch.Tensor:
    """``[N]`` float32 mono at ``target_rate`` from ``[N]`` or ``[C, N]`` audio at ``sample_rate``."""
    wav = torch.as_tensor(np.asarray(wav) if not isinstance(wav, torch.Tensor) else wav).float()
    if wav.dim() == 2:
        wav = wav.mean(0)
    if wav.dim() != 1:
        raise ValueError(f"expected audio shaped [N] or [C, N], got shape {tuple(wav.shape)}")
    if sample_rate != target_rate:
        wav = julius.resample_frac(wav, int(sample_rate), int(target_rate))
    return wav


class AudioEmbedder(ABC):
    """Maps a clip to frame embeddings ``[T, D]`` (FAD pools frames, or clip means, across a set)."""

    name: str = ""
    sample_rate: int = 16000

    @abstractmethod
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """``[T, D]`` embeddings of one mono clip ``[N]`` at :attr:`sample_rate`."""

    @torch.no_grad()
    def embed_clips(self, clips: Sequence[tuple[np.ndarray | torch.Tensor, int]]) -> list[np.ndarray]:
        """``[T_i, D]`` float64 embeddings of each ``(wav, sample_rate)`` clip."""
        return [self.embed(to_mono(wav, rate, self.sample_rate)).double().numpy() for wav, rate in clips]


class AudioClassifier(ABC):
    """Maps a clip to class logits ``[C]`` (KL and Inception Score use their softmax)."""

    sample_rate: int = 16000

    @abstractmethod
    def logits(self, wav: torch.Tensor) -> torch.Tensor:
        """``[C]`` class logits of one mono clip ``[N]`` at :attr:`sample_rate`."""

    @torch.no_grad()
    def classify_clips(self, clips: Sequence[tuple[np.ndarray | torch.Tensor, int]]) -> np.ndarray:
        """``[N, C]`` float64 logits of the ``(wav, sample_rate)`` clips."""
        return np.stack([self.logits(to_mono(wav, rate, self.sample_rate)).double().numpy() for wav, rate in clips])

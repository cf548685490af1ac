"""The Codec interface: waveform <-> discrete codes (LM backend) and continuous latents (diffusion backend)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn


class Codec(nn.Module, ABC):
    """A neural audio codec.

    Shapes: ``wav`` is ``[B, C, N]`` float in [-1, 1] at :attr:`sample_rate` with :attr:`channels` channels;
    ``codes`` is ``[B, K, T]`` int64 with values in ``[0, cardinality)`` at :attr:`frame_rate` frames per second;
    latents are ``[B, D, T]``.
    """

    #: registry key written into checkpoint configs (e.g. ``"encodec"``)
    kind: str = ""

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Audio sample rate in Hz."""

    @property
    @abstractmethod
    def channels(self) -> int:
        """Number of audio channels the codec takes and returns."""

    @property
    @abstractmethod
    def frame_rate(self) -> float:
        """Code frames per second."""

    @property
    @abstractmethod
    def num_codebooks(self) -> int:
        """K, the number of parallel code streams."""

    @property
    @abstractmethod
    def cardinality(self) -> int:
        """Entries per codebook."""

    @abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, C, N]`` waveform -> ``[B, K, T]`` codes."""

    @abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, K, T]`` codes -> ``[B, C, N]`` waveform."""

    @abstractmethod
    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, C, N]`` waveform -> ``[B, D, T]`` continuous latent (before quantisation)."""

    @abstractmethod
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """``[B, D, T]`` continuous latent -> ``[B, C, N]`` waveform."""

    def codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, K, T]`` codes -> ``[B, D, T]`` quantised latent, the input :meth:`decode_latent` takes (codecs with a
        residual quantiser override this; a diffusion model can then train on a token cache)."""
        raise NotImplementedError(f"{type(self).__name__} cannot turn codes into a latent")

    def set_decoder_dtype(self, dtype: torch.dtype) -> bool:
        """Decode in ``dtype`` for inference (``Backend.set_dtype`` asks for bf16 on a native-bf16 CPU); True when
        set. A codec without a faster low-precision decode keeps float32 and says False."""
        return False

    @abstractmethod
    def save_pretrained(self, directory: str | Path) -> None:
        """Write the codec (config and safetensors weights) into ``directory``."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able description stored in a checkpoint's ``config.json`` under ``"codec"``."""

    def num_frames(self, num_samples: int) -> int:
        """Number of code frames for ``num_samples`` audio samples."""
        hop = self.sample_rate / self.frame_rate
        return int(-(-num_samples // hop))

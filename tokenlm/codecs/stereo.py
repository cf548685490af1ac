"""Stereo from a mono EnCodec, as stereo MusicGen does it: each channel coded on its own, codebooks interleaved.

The left and right channels go through the same mono EnCodec; their ``[B, K, T]`` codes are interleaved into
``[B, 2K, T]`` (left codebook 0, right codebook 0, left codebook 1, ...), the layout of transformers'
``MusicgenForConditionalGeneration`` with ``audio_channels=2`` and of audiocraft's ``interleave_stereo_codebooks``
pattern. Decoding splits them again and stacks the two decoded channels: ``[B, 2, N]``.

Latents (diffusion) are the two channels' encoder outputs stacked on the feature axis: ``[B, 2D, T]``.

Example:
    >>> from tokenlm.codecs import tiny_encodec_config
    >>> codec = StereoEncodecCodec.from_config(tiny_encodec_config(), seed=0)
    >>> codec.channels, codec.num_codebooks
    (2, 8)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tokenlm.codecs.base import Codec
from tokenlm.codecs.encodec import EncodecCodec

__all__ = ["StereoEncodecCodec", "deinterleave", "interleave"]


def interleave(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Two ``[B, K, ...]`` channel tensors -> ``[B, 2K, ...]`` with rows left 0, right 0, left 1, right 1, ..."""
    return torch.stack([left, right], dim=2).flatten(1, 2)


def deinterleave(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, 2K, ...]`` interleaved rows -> the left and right ``[B, K, ...]`` (the inverse of :func:`interleave`)."""
    return codes[:, 0::2], codes[:, 1::2]


class StereoEncodecCodec(Codec):
    """A mono EnCodec coding two channels side by side (see the module docstring).

    Args:
        mono: the mono, unchunked, unnormalised codec (MusicGen's are); each channel gets its K codebooks.
    """

    kind = "encodec_stereo"

    def __init__(self, mono: EncodecCodec) -> None:
        super().__init__()
        if mono.channels != 1:
            raise ValueError(
                f"a stereo codec is built from a mono EnCodec (each channel coded on its own); this one has "
                f"{mono.channels} channels"
            )
        mono._require_unframed("a stereo codec")
        self.mono = mono

    @classmethod
    def from_config(cls, config: dict[str, Any] | Any, bandwidth: float | None = None,
                    seed: int | None = None) -> StereoEncodecCodec:
        """A randomly initialised mono EnCodec (see :meth:`EncodecCodec.from_config`) coding two channels."""
        return cls(EncodecCodec.from_config(config, bandwidth, seed))

    @classmethod
    def from_pretrained(cls, directory: str | Path, bandwidth: float | None = None) -> StereoEncodecCodec:
        """The mono EnCodec saved in ``directory`` coding two channels."""
        return cls(EncodecCodec.from_pretrained(directory, bandwidth))

    def save_pretrained(self, directory: str | Path) -> None:
        """The mono EnCodec's folder (``config.json`` names this codec's kind)."""
        self.mono.save_pretrained(directory)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "bandwidth": self.mono.bandwidth}

    def set_decoder_dtype(self, dtype: torch.dtype) -> bool:
        return self.mono.set_decoder_dtype(dtype)

    @property
    def sample_rate(self) -> int:
        return self.mono.sample_rate

    @property
    def channels(self) -> int:
        """Two: left and right."""
        return 2

    @property
    def frame_rate(self) -> float:
        return self.mono.frame_rate

    @property
    def cardinality(self) -> int:
        return self.mono.cardinality

    @property
    def num_codebooks(self) -> int:
        """2K: the mono codec's K codebooks for each channel, interleaved."""
        return 2 * self.mono.num_codebooks

    @property
    def latent_dim(self) -> int:
        """2D: the two channels' latents stacked."""
        return 2 * self.mono.latent_dim

    def _split(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A ``[B, 2, N]`` waveform -> its ``[B, 1, N]`` left and right channels."""
        if wav.dim() != 3 or wav.shape[1] != 2:
            raise ValueError(f"a stereo codec takes waveforms shaped [B, 2, N], got shape {tuple(wav.shape)}")
        return wav[:, :1], wav[:, 1:]

    def _split_codes(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if codes.dim() != 3 or codes.shape[1] != self.num_codebooks:
            raise ValueError(
                f"expected interleaved stereo codes shaped [B, K={self.num_codebooks}, T], got shape "
                f"{tuple(codes.shape)}"
            )
        return deinterleave(codes)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, 2, N]`` waveform -> ``[B, 2K, ceil(N / hop)]`` interleaved codes."""
        left, right = self._split(wav)
        return interleave(self.mono.encode(left), self.mono.encode(right))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, 2K, T]`` interleaved codes -> ``[B, 2, T * hop]`` waveform."""
        left, right = self._split_codes(codes)
        return torch.cat([self.mono.decode(left), self.mono.decode(right)], dim=1)

    @torch.no_grad()
    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, 2, N]`` waveform -> ``[B, 2D, T]``: left latent, then right."""
        left, right = self._split(wav)
        return torch.cat([self.mono.encode_latent(left), self.mono.encode_latent(right)], dim=1)

    @torch.no_grad()
    def codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, 2K, T]`` codes -> ``[B, 2D, T]`` quantised latents of both channels."""
        left, right = self._split_codes(codes)
        return torch.cat([self.mono.codes_to_latent(left), self.mono.codes_to_latent(right)], dim=1)

    @torch.no_grad()
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """``[B, 2D, T]`` latents -> ``[B, 2, T * hop]`` waveform."""
        if latent.dim() != 3 or latent.shape[1] != self.latent_dim:
            shape = tuple(latent.shape)
            raise ValueError(f"expected a latent shaped [B, D={self.latent_dim}, T], got shape {shape}")
        left, right = latent.chunk(2, dim=1)
        return torch.cat([self.mono.decode_latent(left), self.mono.decode_latent(right)], dim=1)

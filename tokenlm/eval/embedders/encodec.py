"""EnCodec encoder latents as FAD embeddings (``EncodecCodec.encode_latent``), from a local folder."""

from __future__ import annotations

from pathlib import Path

import torch

from tokenlm.codecs import EncodecCodec
from tokenlm.eval.embedders.base import AudioEmbedder, find_weights


class EncodecEmbedder(AudioEmbedder):
    """Frames of EnCodec's continuous latent ``[T, D]`` (before quantisation)."""

    name = "encodec"

    def __init__(self, codec: EncodecCodec) -> None:
        self.codec = codec
        self.sample_rate = codec.sample_rate

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> EncodecEmbedder:
        """Load a Hugging Face EnCodec folder (``config.json`` + ``model.safetensors``)."""
        find_weights(directory, ("config.json",), "EnCodec")
        find_weights(directory, ("*.safetensors", "*.bin"), "EnCodec")
        return cls(EncodecCodec.from_pretrained(directory))

    @torch.no_grad()
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        wav = wav[None, None].expand(1, self.codec.channels, -1)  # [1, C, N]
        return self.codec.encode_latent(wav)[0].T.float().cpu()  # [T, D]

"""Per-channel normalisation of codec latents, fitted on training data and saved with the model."""

from __future__ import annotations

import torch
from torch import nn


class LatentNormalizer(nn.Module):
    """``(z - mean) / std`` per latent channel; the statistics are buffers, so checkpoints hold them."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(latent_dim))  # [D]
        self.register_buffer("std", torch.ones(latent_dim))  # [D]

    @torch.no_grad()
    def fit(self, latents: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Statistics of latents ``[B, D, T]`` over their valid frames ``[B, T]`` (all frames when None)."""
        frames = latents.transpose(1, 2).reshape(-1, latents.shape[1]).double()  # [B*T, D]
        if mask is not None:
            frames = frames[mask.reshape(-1).bool()]
        if frames.shape[0] < 2:
            raise ValueError("fitting latent statistics needs at least 2 valid latent frames")
        self.mean.copy_(frames.mean(dim=0).float())
        self.std.copy_(frames.std(dim=0).clamp(min=1e-5).float())

    def normalize(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, D, T]`` codec latents -> unit-scale latents."""
        return (latents - self.mean[:, None]) / self.std[:, None]

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, D, T]`` unit-scale latents -> codec latents."""
        return latents * self.std[:, None] + self.mean[:, None]

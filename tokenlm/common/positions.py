"""Positional encodings shared by the transformers: sinusoidal tables and rotary embeddings (RoPE)."""

from __future__ import annotations

import torch


def sinusoidal_embedding(positions: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """MusicGen / audiocraft sinusoidal embedding: ``[cos(p / P^(i/(h-1))), sin(...)]``, h = dim // 2.

    Args:
        positions: ``[T]`` integer or float positions.
    Returns:
        ``[T, dim]`` float32.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embedding needs an even dimension, got {dim}")
    half = dim // 2
    freqs = torch.arange(half, dtype=torch.float32, device=positions.device) / max(half - 1, 1)
    phase = positions.float()[:, None] / (max_period ** freqs)[None, :]  # [T, half]
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


def rope_tables(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables ``[T, head_dim // 2]`` for rotary embeddings (half-split convention)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    half = head_dim // 2
    inv_freq = base ** (-torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    angles = positions.float()[:, None] * inv_freq[None, :]  # [T, half]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool = False) -> torch.Tensor:
    """Rotate ``x`` ``[B, H, T, Dh]`` by tables ``[T, Dh // 2]``.

    ``interleaved=False`` pairs dimension i with i + Dh/2 (GPT-NeoX / Llama style); ``interleaved=True``
    pairs 2i with 2i + 1 (audiocraft's complex-number style).
    """
    xf = x.float()
    if interleaved:
        x1, x2 = xf[..., 0::2], xf[..., 1::2]
        out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    else:
        x1, x2 = xf.chunk(2, dim=-1)
        out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.to(x.dtype)

"""Numeric metadata conditioners (bpm, loudness...): a value in a configured range -> one learned token.

The embedder is Stable Audio's: the value is normalised to ``[0, 1]``, expanded with learned Fourier
features (``[t, sin(2 pi w t), cos(2 pi w t)]``) and projected to ``output_dim``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from conditioners.base import Condition, Conditioner


def check_in_range(attribute: str, value: Any, low: float, high: float, unit: str = "") -> float:
    """``value`` as a float when it lies in ``[low, high]``; ValueError naming the value and the range."""
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(
            f"attribute {attribute!r} got {value!r}{unit}, outside the configured range [{low:g}, {high:g}]{unit}"
        )
    return number


def check_range_config(low: float, high: float) -> tuple[float, float]:
    """Validate a configured ``[low, high]`` range."""
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        raise ValueError(f"the range needs finite bounds with max > min, got [{low}, {high}]")
    return low, high


def prepare_numbers(conditioner: Conditioner, values: list[Any], low: float, high: float, unit: str = "") -> dict:
    """Validate numbers on CPU: ``values`` ``[B]`` float (0 for null rows) and ``mask`` ``[B]`` bool."""
    if not values:
        raise ValueError(f"attribute {conditioner.attribute!r}: prepare needs at least one value")
    numbers, mask = [], []
    for value in values:
        conditioner.validate(value)
        mask.append(value is not None)
        numbers.append(low if value is None else check_in_range(conditioner.attribute, value, low, high, unit))
    return {"values": torch.tensor(numbers, dtype=torch.float64), "mask": torch.tensor(mask, dtype=torch.bool)}


def single_token(embeds: torch.Tensor, mask: torch.Tensor) -> Condition:
    """One token per sample: embeds ``[B, D]`` -> ``[B, 1, D]``, zeroed where ``mask`` ``[B]`` is False."""
    embeds = embeds * mask[:, None].to(embeds.dtype)
    return Condition(embeds[:, None], mask[:, None])


class NumberEmbedder(nn.Module):
    """Learned Fourier features of ``t`` in ``[0, 1]``: ``[B]`` -> ``[B, output_dim]`` (Stable Audio)."""

    def __init__(self, output_dim: int, fourier_dim: int = 64) -> None:
        super().__init__()
        if fourier_dim < 2 or fourier_dim % 2:
            raise ValueError(f"fourier_dim must be an even number >= 2, got {fourier_dim}")
        self.weights = nn.Parameter(torch.randn(fourier_dim // 2))  # [F/2]
        self.proj = nn.Linear(fourier_dim + 1, output_dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.weights.dtype)[:, None]  # [B, 1]
        phase = t * self.weights[None] * 2 * math.pi  # [B, F/2]
        return self.proj(torch.cat([t, phase.sin(), phase.cos()], dim=-1))  # [B, D]


class NumberConditioner(Conditioner):
    """A number in ``[min_value, max_value]`` -> one learned token ``[B, 1, output_dim]``.

    Values outside the range are an error (naming the value and the range), never silently clamped.

    Example:
        >>> bpm = NumberConditioner("bpm", 64, min_value=40, max_value=240)
        >>> bpm.encode([120, None]).embeds.shape
        torch.Size([2, 1, 64])
    """

    kind = "number"
    value_types = (int, float)

    def __init__(
        self, attribute: str, output_dim: int, min_value: float = 0.0, max_value: float = 1.0, fourier_dim: int = 64
    ) -> None:
        super().__init__(attribute, output_dim)
        self.min_value, self.max_value = check_range_config(min_value, max_value)
        self.fourier_dim = int(fourier_dim)
        self.embedder = NumberEmbedder(output_dim, self.fourier_dim)

    def prepare(self, values: list[Any]) -> dict[str, torch.Tensor]:
        return prepare_numbers(self, values, self.min_value, self.max_value)

    def forward(self, inputs: dict[str, torch.Tensor]) -> Condition:
        """Embeds ``[B, 1, output_dim]`` (zero for null rows) and mask ``[B, 1]``."""
        mask = inputs["mask"].to(self.device)  # [B]
        t = (inputs["values"].to(self.device) - self.min_value) / (self.max_value - self.min_value)  # [B] in [0, 1]
        return single_token(self.embedder(t), mask)

    def config(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute, "output_dim": self.output_dim, "min_value": self.min_value,
            "max_value": self.max_value, "fourier_dim": self.fourier_dim,
        }

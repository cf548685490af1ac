"""Timing conditioner (Stable Audio): ``seconds_start`` / ``seconds_total`` -> a learned per-second token.

Each whole second in ``[min_seconds, max_seconds]`` has a learned embedding; a fractional value
interpolates linearly between its two neighbours. Routed to ``cross`` (the default), the token is
concatenated to the text condition, as in Stable Audio. A value outside the configured range is an error
naming the value and the range.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from conditioners.base import Condition, Conditioner
from conditioners.number import check_range_config, prepare_numbers, single_token


class TimingConditioner(Conditioner):
    """Seconds -> ``[B, 1, output_dim]``; use one per attribute (``seconds_start``, ``seconds_total``).

    Example:
        >>> total = TimingConditioner("seconds_total", 32, max_seconds=47)
        >>> total.encode([10.5, None]).mask.tolist()
        [[True], [False]]
    """

    kind = "timing"
    value_types = (int, float)

    def __init__(self, attribute: str, output_dim: int, min_seconds: int = 0, max_seconds: int = 512) -> None:
        super().__init__(attribute, output_dim)
        if int(min_seconds) != min_seconds or int(max_seconds) != max_seconds:
            raise ValueError(f"min_seconds and max_seconds must be whole seconds, got {min_seconds}, {max_seconds}")
        low, high = check_range_config(min_seconds, max_seconds)
        self.min_seconds, self.max_seconds = int(low), int(high)
        self.embedding = nn.Embedding(self.max_seconds - self.min_seconds + 1, output_dim)  # one row per second

    def prepare(self, values: list[Any]) -> dict[str, torch.Tensor]:
        return prepare_numbers(self, values, self.min_seconds, self.max_seconds, unit=" s")

    def forward(self, inputs: dict[str, torch.Tensor]) -> Condition:
        """Embeds ``[B, 1, output_dim]`` (zero for null rows) and mask ``[B, 1]``."""
        mask = inputs["mask"].to(self.device)  # [B]
        offset = inputs["values"].to(self.device) - self.min_seconds  # [B] in [0, rows - 1]
        low = offset.floor().long().clamp(max=self.embedding.num_embeddings - 1)  # [B]
        high = (low + 1).clamp(max=self.embedding.num_embeddings - 1)
        frac = (offset - low).to(self.embedding.weight.dtype)[:, None]  # [B, 1]
        embeds = (1 - frac) * self.embedding(low) + frac * self.embedding(high)  # [B, D]
        return single_token(embeds, mask)

    def config(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute, "output_dim": self.output_dim, "min_seconds": self.min_seconds,
            "max_seconds": self.max_seconds,
        }


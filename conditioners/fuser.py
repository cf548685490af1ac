"""Route each attribute's condition to where the backend consumes it (audiocraft's ``ConditionFuser``).

Three routes:

- ``cross``: concatenated along the sequence with the other cross conditions; the backend cross-attends
  to it (masks kept).
- ``prepend``: concatenated along the sequence and placed before the backend's input sequence; the
  backend strips their outputs (masked positions are never attended to).
- ``sum``: pooled to one vector per sample (mean over valid positions; zero for a null row) and added to
  every input embedding of the backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from conditioners.base import Condition

#: the places a condition can be routed to
FUSE_MODES = ("cross", "prepend", "sum")


def check_fuse(attribute: str, mode: str) -> str:
    """Return ``mode`` when it is a known route; ValueError naming the attribute and the allowed routes."""
    if mode not in FUSE_MODES:
        raise ValueError(f"attribute {attribute!r}: unknown fuse route {mode!r}; choose one of {', '.join(FUSE_MODES)}")
    return mode


@dataclass
class FusedCondition:
    """The conditions of a batch, grouped by route.

    Attributes:
        cross: ``[B, S, D]`` cross-attention condition (all ``cross`` conditions concatenated), or None.
        prepend: ``[B, P, D]`` tokens to place before the input sequence, or None.
        sum: ``[B, 1, D]`` vector added to every input embedding (mask ``[B, 1]``: any contributor valid).
    """

    cross: Condition | None = None
    prepend: Condition | None = None
    sum: Condition | None = None

    def parts(self) -> dict[str, Condition]:
        """The routes present, in ``FUSE_MODES`` order."""
        return {name: getattr(self, name) for name in FUSE_MODES if getattr(self, name) is not None}

    @property
    def batch_size(self) -> int:
        parts = self.parts()
        if not parts:
            raise ValueError("an empty FusedCondition has no batch size")
        return next(iter(parts.values())).batch_size

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> FusedCondition:
        return FusedCondition(**{name: c.to(device, dtype) for name, c in self.parts().items()})

    def cat_batch(self, other: FusedCondition) -> FusedCondition:
        """Stack two fused conditions along the batch (e.g. conditional and null halves for CFG)."""
        if set(self.parts()) != set(other.parts()):
            raise ValueError(f"cannot stack conditions routed to {sorted(self.parts())} and {sorted(other.parts())}")
        parts = {name: Condition.cat_batch([c, getattr(other, name)]) for name, c in self.parts().items()}
        return FusedCondition(**parts)

    def as_sequence(self) -> Condition | None:
        """Every route's tokens concatenated along the sequence (``cross``, ``prepend``, ``sum``): the text
        representation the RR objective pools."""
        parts = list(self.parts().values())
        return Condition.cat_sequence(parts) if parts else None


def pool_condition(condition: Condition) -> Condition:
    """Mean over valid positions: ``[B, S, D]`` -> ``[B, 1, D]`` (zeros and a False mask for a null row)."""
    weights = condition.mask.to(condition.embeds.dtype)[..., None]  # [B, S, 1]
    total = (condition.embeds * weights).sum(dim=1, keepdim=True)  # [B, 1, D]
    pooled = total / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
    return Condition(pooled, condition.mask.any(dim=1, keepdim=True))


def fuse_conditions(routed: list[tuple[str, Condition]]) -> FusedCondition:
    """Group ``(route, condition)`` pairs into a :class:`FusedCondition` (order within a route is kept)."""
    groups: dict[str, list[Condition]] = {name: [] for name in FUSE_MODES}
    for route, condition in routed:
        groups[route].append(condition)
    fused = FusedCondition()
    if groups["cross"]:
        fused.cross = Condition.cat_sequence(groups["cross"])
    if groups["prepend"]:
        fused.prepend = Condition.cat_sequence(groups["prepend"])
    if groups["sum"]:
        pooled = [pool_condition(c) for c in groups["sum"]]
        embeds = torch.stack([p.embeds for p in pooled]).sum(dim=0)  # [B, 1, D]
        mask = torch.stack([p.mask for p in pooled]).any(dim=0)  # [B, 1]
        fused.sum = Condition(embeds, mask)
    return fused

"""Condition dropout for classifier-free guidance (CFG) and per-attribute dropout.

- CFG dropout replaces *every* attribute of a sample by its null value. Batch-level (the default, what the
  RR objective needs: the whole batch is unconditioned) or, as an option, per sample.
- Attribute dropout replaces one attribute by its null value, independently per sample (e.g. drop
  ``genre`` 50% of the time, ``description`` 10%), so the model also learns every partial condition.

Draws come from a caller-owned ``torch.Generator``: a trainer that saves and restores that generator
resumes with exactly the same drops. Under data parallelism every rank draws the global batch and keeps
its own slice, so all ranks consume the generator identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


def _check_probability(name: str, p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"dropout probability of {name} must be a number in [0, 1], got {p!r}")
    return float(p)


@dataclass(frozen=True)
class DropoutDraw:
    """The drops of one micro-batch.

    Attributes:
        dropped: ``[B]`` bool, samples that lose all their conditions (CFG); losses such as RR read it.
        attributes: attribute -> ``[B]`` bool, samples that lose that attribute only.
    """

    dropped: torch.Tensor  # [B] bool
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [B] bool

    @property
    def any(self) -> bool:
        """True when at least one value of the batch is dropped."""
        return bool(self.dropped.any()) or any(bool(m.any()) for m in self.attributes.values())

    def apply(self, attributes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """New attribute dicts with dropped values set to None (the input is not modified)."""
        if len(attributes) != self.dropped.shape[0]:
            raise ValueError(f"{len(attributes)} attribute dicts for a dropout draw of {self.dropped.shape[0]}")
        out = []
        for i, item in enumerate(attributes):
            if bool(self.dropped[i]):
                out.append({name: None for name in item})
                continue
            new = dict(item)
            for name, mask in self.attributes.items():
                if bool(mask[i]):
                    new[name] = None
            out.append(new)
        return out


@dataclass(frozen=True)
class ConditionDropout:
    """How conditions are dropped during training.

    Attributes:
        cfg: probability of CFG dropout (all conditions of a batch, or of a sample with ``per_sample``).
        per_sample: draw CFG dropout per sample instead of once per batch.
        attributes: attribute -> probability of dropping that attribute alone (per sample).

    Example:
        >>> drop = ConditionDropout(cfg=0.1, attributes={"genre": 0.5})
        >>> draw = drop.draw(4, torch.Generator().manual_seed(0))
        >>> draw.dropped.shape, sorted(draw.attributes)
        (torch.Size([4]), ['genre'])
    """

    cfg: float = 0.0
    per_sample: bool = False
    attributes: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_probability("cfg", self.cfg)
        for name, p in self.attributes.items():
            _check_probability(f"attribute {name!r}", p)

    def check_attributes(self, known: list[str]) -> None:
        """ValueError when attribute dropout names an attribute no conditioner claims."""
        unknown = sorted(set(self.attributes) - set(known))
        if unknown:
            raise ValueError(f"attribute dropout names unknown attribute(s) {unknown}; the model knows {known}")

    def draw(self, batch_size: int, generator: torch.Generator, *, world_size: int = 1, rank: int = 0) -> DropoutDraw:
        """Draw the drops of a micro-batch of ``batch_size`` (this rank's slice of the global batch).

        The CFG draw comes first and consumes the generator exactly as a plain CFG draw does (one number per
        batch, or one per sample of the global batch); attribute draws follow in sorted attribute order.
        """
        own = slice(rank * batch_size, (rank + 1) * batch_size)
        if self.per_sample:
            dropped = (torch.rand(batch_size * world_size, generator=generator) < self.cfg)[own]
        else:
            dropped = (torch.rand(1, generator=generator) < self.cfg).expand(batch_size).clone()
        attributes = {}
        for name in sorted(self.attributes):
            p = self.attributes[name]
            if p > 0:
                attributes[name] = (torch.rand(batch_size * world_size, generator=generator) < p)[own]
        return DropoutDraw(dropped, attributes)

"""Routes a batch of attribute dicts to the conditioners that claim them and fuses their outputs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from conditioners.base import Condition, Conditioner


class ConditioningProvider(nn.Module):
    """The set of conditioners of a model, keyed by the attribute each one claims.

    All conditions are fused for cross-attention by concatenation along the sequence (masks kept).
    """

    def __init__(self, conditioners: list[Conditioner] | None = None) -> None:
        super().__init__()
        self.conditioners = nn.ModuleDict()
        for conditioner in conditioners or []:
            if conditioner.attribute in self.conditioners:
                raise ValueError(f"two conditioners claim the attribute {conditioner.attribute!r}")
            self.conditioners[conditioner.attribute] = conditioner

    @property
    def attributes(self) -> list[str]:
        return list(self.conditioners.keys())

    @property
    def output_dims(self) -> set[int]:
        return {c.output_dim for c in self.conditioners.values()}

    def validate(self, attributes: list[dict[str, Any]]) -> None:
        """Raise ``ValueError`` for an unknown key or a bad value, naming it and what is allowed."""
        known = self.attributes
        for index, item in enumerate(attributes):
            if not isinstance(item, dict):
                raise ValueError(
                    f"prompt {index} must be a string or an attribute dict, got {type(item).__name__}"
                )
            unknown = sorted(set(item) - set(known))
            if unknown:
                raise ValueError(
                    f"prompt {index} has unknown attribute(s) {unknown}; this model knows {known or 'none'}"
                )
            for name, value in item.items():
                self.conditioners[name].validate(value)

    def prepare(self, attributes: list[dict[str, Any]], null: bool = False) -> dict[str, Any]:
        """CPU-side preparation of every conditioner's inputs; ``null=True`` gives the CFG null batch."""
        return {
            name: conditioner.prepare([None if null else item.get(name) for item in attributes])
            for name, conditioner in self.conditioners.items()
        }

    def forward(self, prepared: dict[str, Any]) -> Condition | None:
        """Run the conditioners and fuse their conditions: ``[B, S_total, D]`` (None without conditioners)."""
        conditions = [self.conditioners[name](inputs) for name, inputs in prepared.items()]
        if not conditions:
            return None
        if len(conditions) == 1:
            return conditions[0]
        return Condition(
            torch.cat([c.embeds for c in conditions], dim=1), torch.cat([c.mask for c in conditions], dim=1)
        )

    def encode(self, attributes: list[dict[str, Any]], null: bool = False) -> Condition | None:
        """Validate, prepare and run in one call."""
        if not null:
            self.validate(attributes)
        return self(self.prepare(attributes, null=null))

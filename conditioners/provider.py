"""Routes a batch of attribute dicts to the conditioners that claim them and fuses their outputs."""

from __future__ import annotations

from typing import Any

from torch import nn

from conditioners.base import Conditioner
from conditioners.fuser import FusedCondition, check_fuse, fuse_conditions


class ConditioningProvider(nn.Module):
    """The set of conditioners of a model, keyed by the attribute each one claims.

    Args:
        conditioners: one per attribute.
        routes: attribute -> ``cross`` | ``prepend`` | ``sum`` (see :mod:`conditioners.fuser`); attributes
            not named are routed to ``cross``.
    """

    def __init__(self, conditioners: list[Conditioner] | None = None, routes: dict[str, str] | None = None) -> None:
        super().__init__()
        self.conditioners = nn.ModuleDict()
        for conditioner in conditioners or []:
            if conditioner.attribute in self.conditioners:
                raise ValueError(f"two conditioners claim the attribute {conditioner.attribute!r}")
            self.conditioners[conditioner.attribute] = conditioner
        routes = dict(routes or {})
        unknown = sorted(set(routes) - set(self.conditioners))
        if unknown:
            raise ValueError(f"routes name attribute(s) {unknown} that no conditioner claims; known: {self.attributes}")
        self.routes = {name: check_fuse(name, routes.get(name, "cross")) for name in self.conditioners}

    @property
    def attributes(self) -> list[str]:
        return list(self.conditioners.keys())

    @property
    def output_dims(self) -> set[int]:
        return {c.output_dim for c in self.conditioners.values()}

    def routed_to(self, route: str) -> list[str]:
        """The attributes routed to ``route`` (``cross``, ``prepend`` or ``sum``)."""
        return [name for name, r in self.routes.items() if r == route]

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

    def forward(self, prepared: dict[str, Any]) -> FusedCondition | None:
        """Run the conditioners and fuse their conditions by route (None without conditioners)."""
        routed = [(self.routes[name], self.conditioners[name](inputs)) for name, inputs in prepared.items()]
        return fuse_conditions(routed) if routed else None

    def encode(self, attributes: list[dict[str, Any]], null: bool = False) -> FusedCondition | None:
        """Validate, prepare and run in one call."""
        if not null:
            self.validate(attributes)
        return self(self.prepare(attributes, null=null))

"""The conditioner interface shared by every backend.

A conditioner turns the values of one attribute (``"description"``, ``"genre"``, ``"seconds_total"``...)
into a :class:`Condition`: a sequence of embeddings and a validity mask. ``None`` is every conditioner's
null value: the unconditional input used for classifier-free guidance (CFG). A null row comes back with
zero embeddings and an all-False mask; attention layers must treat such a row without producing NaN.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Condition:
    """Embeddings of one attribute for a batch.

    Attributes:
        embeds: ``[B, S, D]`` float embeddings; rows of null (CFG-dropped) samples are zero.
        mask: ``[B, S]`` bool, True where a position holds a real token.
    """

    embeds: torch.Tensor  # [B, S, D]
    mask: torch.Tensor  # [B, S] bool

    def __post_init__(self) -> None:
        if self.embeds.dim() != 3 or self.mask.shape != self.embeds.shape[:2]:
            raise ValueError(
                f"Condition needs embeds [B, S, D] and mask [B, S]; got {tuple(self.embeds.shape)} "
                f"and {tuple(self.mask.shape)}"
            )
        if self.mask.dtype != torch.bool:
            self.mask = self.mask.bool()

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Condition:
        return Condition(self.embeds.to(device=device, dtype=dtype), self.mask.to(device=device))


class Conditioner(nn.Module, ABC):
    """Base class of all conditioners (found through the ``tokenlm.conditioners`` entry-point group).

    Subclasses implement :meth:`prepare` (CPU-side work such as tokenisation), :meth:`forward`
    (the embedding itself), :meth:`config` (JSON-able constructor arguments) and, when they own files
    such as a tokenizer, :meth:`save_assets` and the ``asset_dir`` argument of :meth:`from_config`.
    Weights are not assets: they live in the checkpoint's ``model.safetensors`` with the rest of the model.
    """

    #: the key this class is registered under in the entry-point group (e.g. ``"t5"``)
    kind: ClassVar[str] = ""
    #: the Python types a non-null value may have
    value_types: ClassVar[tuple[type, ...]] = (str,)

    def __init__(self, attribute: str, output_dim: int) -> None:
        super().__init__()
        if not attribute or not isinstance(attribute, str):
            raise ValueError(f"a conditioner needs a non-empty attribute name, got {attribute!r}")
        self.attribute = attribute
        self.output_dim = int(output_dim)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def validate(self, value: Any) -> None:
        """Raise ``ValueError`` naming the bad value when ``value`` is not acceptable (None always is)."""
        if value is None:
            return
        if not isinstance(value, self.value_types) or isinstance(value, bool):
            allowed = " or ".join(t.__name__ for t in self.value_types)
            raise ValueError(
                f"attribute {self.attribute!r} takes {allowed} values (or None for the null condition), "
                f"got {type(value).__name__} {value!r}"
            )
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                f"attribute {self.attribute!r} got an empty string; give some text, or None for no condition"
            )

    @abstractmethod
    def prepare(self, values: list[Any]) -> Any:
        """CPU-side preprocessing (tokenisation) of a batch of values; ``None`` marks a null value."""

    @abstractmethod
    def forward(self, inputs: Any) -> Condition:
        """Embed prepared inputs: returns a :class:`Condition` with ``output_dim`` features."""

    def encode(self, values: list[Any]) -> Condition:
        """``prepare`` then ``forward``: the convenience path for a list of raw values."""
        for value in values:
            self.validate(value)
        return self(self.prepare(values))

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments, enough with the assets to rebuild this conditioner."""

    def save_assets(self, directory: Path) -> None:
        """Write non-weight files (tokenizer, encoder config) into ``directory``. Default: none."""

    @classmethod
    def from_config(cls, config: dict[str, Any], asset_dir: Path | None = None) -> Conditioner:
        """Rebuild the architecture (weights are loaded separately from ``model.safetensors``)."""
        return cls(**config)

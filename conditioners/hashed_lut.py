"""Hashed look-up-table conditioner: audiocraft's ``LUTConditioner`` with its ``noop`` tokenizer.

Each value (one string: an artist, a genre, a label) picks row ``sha256(value) mod bins`` of a learned table, which a
linear layer projects to the model width. No vocabulary is stored, so any value has a row (values that share a row
share an embedding). A null value is an all-zero, masked token. Unlike :class:`conditioners.lut.LUTConditioner`
values are not normalised: ``"Rock"`` and ``"rock"`` are different rows, as in audiocraft, which this class exists
to load checkpoints of.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

from conditioners.base import Condition, Conditioner


def hash_index(value: str, bins: int) -> int:
    """Row of ``value``: the SHA-256 of its UTF-8 bytes, as an integer, modulo ``bins``.

    Example:
        >>> hash_index("rock", 16)
        4
    """
    return int(hashlib.sha256(value.encode("utf-8")).hexdigest(), 16) % bins


class HashedLUTConditioner(Conditioner):
    """A string -> one token ``[B, 1, output_dim]``: hashed table row ``[dim]`` then a linear projection.

    Args:
        attribute: the attribute this conditioner reads.
        output_dim: feature size of the output tokens.
        bins: rows in the table (audiocraft ``n_bins``).
        dim: width of a table row (audiocraft ``dim``); the projection maps it to ``output_dim``.

    Example:
        >>> artist = HashedLUTConditioner("artist", 8, bins=64, dim=4)
        >>> artist.encode(["Queen", None]).embeds.shape
        torch.Size([2, 1, 8])
    """

    kind = "hashed_lut"

    def __init__(self, attribute: str, output_dim: int, bins: int, dim: int) -> None:
        super().__init__(attribute, output_dim)
        if int(bins) < 1 or int(dim) < 1:
            raise ValueError(f"hashed_lut conditioner {attribute!r}: bins and dim must be >= 1, got {bins}, {dim}")
        self.bins, self.dim = int(bins), int(dim)
        self.embed = nn.Embedding(self.bins, self.dim)
        self.output_proj = nn.Linear(self.dim, output_dim)

    def prepare(self, values: list[Any]) -> dict[str, torch.Tensor]:
        """Rows ``[B, 1]`` (0 for a null value) and mask ``[B, 1]`` (False for a null value)."""
        if not values:
            raise ValueError(f"attribute {self.attribute!r}: prepare needs at least one value")
        for value in values:
            self.validate(value)
        indices = [[0 if value is None else hash_index(value, self.bins)] for value in values]
        mask = [[value is not None] for value in values]
        return {"indices": torch.tensor(indices, dtype=torch.long), "mask": torch.tensor(mask, dtype=torch.bool)}

    def forward(self, inputs: dict[str, torch.Tensor]) -> Condition:
        """Embeds ``[B, 1, output_dim]`` (zero for a null value) and mask ``[B, 1]``."""
        mask = inputs["mask"].to(self.device)
        embeds = self.output_proj(self.embed(inputs["indices"].to(self.device)))  # [B, 1, output_dim]
        return Condition(embeds * mask[..., None].to(embeds.dtype), mask)

    def config(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "output_dim": self.output_dim, "bins": self.bins, "dim": self.dim}

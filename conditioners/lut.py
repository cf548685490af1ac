"""Categorical metadata conditioner (genre, mood, key, instrument): a learned look-up table.

Values are matched case-insensitively after trimming. A value outside the configured vocabulary maps to
a learned "unknown" embedding (row 0), never to a crash. A list of values (several instruments) gives one
token per item.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from conditioners.base import Condition, Conditioner, pad_id_rows

UNKNOWN_INDEX = 0


def normalize_category(value: str) -> str:
    return " ".join(value.strip().lower().split())


class LUTConditioner(Conditioner):
    """A category (or a list of them) -> learned tokens ``[B, S, output_dim]``.

    Args:
        attribute: the attribute this conditioner reads (``"genre"``...).
        output_dim: feature size of the embeddings.
        values: the known categories (duplicates after normalisation are merged).
        max_items: the most items a list value may hold.

    Example:
        >>> genre = LUTConditioner("genre", 16, values=["jazz", "rock"])
        >>> genre.index("Jazz"), genre.index("polka")  # unknown -> the "unknown" row
        (1, 0)
    """

    kind = "lut"
    value_types = (str, list, tuple)

    def __init__(self, attribute: str, output_dim: int, values: list[str] | None = None, max_items: int = 8) -> None:
        super().__init__(attribute, output_dim)
        if not values or not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
            raise ValueError(
                f"lut conditioner {attribute!r} needs `values`, a non-empty list of category strings, got {values!r}"
            )
        self.values = list(dict.fromkeys(normalize_category(v) for v in values if v.strip()))
        self.vocabulary = {value: i + 1 for i, value in enumerate(self.values)}  # 0 is "unknown"
        self.max_items = int(max_items)
        if self.max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self.embedding = nn.Embedding(len(self.values) + 1, output_dim)

    def index(self, value: str) -> int:
        """Row of ``value`` in the table (0, the learned "unknown" row, for values outside the vocabulary)."""
        return self.vocabulary.get(normalize_category(value), UNKNOWN_INDEX)

    def validate(self, value: Any) -> None:
        super().validate(value)
        if isinstance(value, (list, tuple)):
            if not value or len(value) > self.max_items:
                raise ValueError(
                    f"attribute {self.attribute!r} takes a list of 1 to {self.max_items} categories, got {value!r}"
                )
            for item in value:
                if not isinstance(item, str) or not item.strip():
                    raise ValueError(
                        f"attribute {self.attribute!r}: list items must be non-empty strings, got {item!r}"
                    )

    def prepare(self, values: list[Any]) -> dict[str, torch.Tensor]:
        """Indices ``[B, S]`` (padded with 0) and mask ``[B, S]``; a null row has one masked position."""
        if not values:
            raise ValueError(f"attribute {self.attribute!r}: prepare needs at least one value")
        rows = []
        for value in values:
            self.validate(value)
            items = [] if value is None else [value] if isinstance(value, str) else list(value)
            rows.append([self.index(item) for item in items])
        indices, mask = pad_id_rows(rows)  # [B, S], [B, S]
        return {"indices": indices, "mask": mask}

    def forward(self, inputs: dict[str, torch.Tensor]) -> Condition:
        """Embeds ``[B, S, output_dim]`` (zero where masked) and mask ``[B, S]``."""
        mask = inputs["mask"].to(self.device)
        embeds = self.embedding(inputs["indices"].to(self.device)) * mask[..., None].to(self.embedding.weight.dtype)
        return Condition(embeds, mask)

    def config(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "output_dim": self.output_dim, "values": self.values,
                "max_items": self.max_items}

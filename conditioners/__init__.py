"""Plugin conditioners: turn prompt attributes into embeddings for any tokenlm backend."""

from conditioners.base import Condition, Conditioner

__all__ = ["Condition", "Conditioner"]

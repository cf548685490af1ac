"""Plugin conditioners: turn prompt attributes into embeddings for any tokenlm backend."""

from conditioners.base import Condition, Conditioner
from conditioners.registry import available_conditioners, build_conditioner, get_conditioner_class

__all__ = ["Condition", "Conditioner", "available_conditioners", "build_conditioner", "get_conditioner_class"]

"""Plugin conditioners: turn prompt attributes into embeddings for any tokenlm backend."""

from conditioners.base import AudioValue, Condition, Conditioner
from conditioners.dropout import ConditionDropout
from conditioners.fuser import FUSE_MODES, FusedCondition
from conditioners.registry import available_conditioners, build_conditioner, get_conditioner_class

__all__ = [
    "FUSE_MODES",
    "AudioValue",
    "Condition",
    "ConditionDropout",
    "Conditioner",
    "FusedCondition",
    "available_conditioners",
    "build_conditioner",
    "get_conditioner_class",
]

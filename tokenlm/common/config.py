"""Architecture configs stored in checkpoint folders."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_dict(cls: type[T], values: dict[str, Any], what: str) -> T:
    """Build the dataclass ``cls`` from a saved dict; an unknown key (a newer or foreign config) is an error."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known keys: {sorted(known)}")
    for field in fields(cls):
        if field.name in values:
            check_type(values[field.name], str(field.type), f"{what} key {field.name!r}")
    return cls(**values)


#: annotations :func:`check_type` checks, and the Python types each one takes (bool is never a number here)
SIMPLE_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def check_type(value: Any, annotation: str, name: str) -> None:
    """ValueError naming ``name`` when ``value`` does not fit a plain ``int`` / ``float`` / ``bool`` / ``str``
    annotation (other annotations are left to the dataclass)."""
    allowed = SIMPLE_TYPES.get(annotation)
    if allowed is None:
        return
    wrong_bool = isinstance(value, bool) and annotation != "bool"
    if wrong_bool or not isinstance(value, allowed):
        raise ValueError(f"{name} must be {annotation}, got {type(value).__name__} {value!r}")

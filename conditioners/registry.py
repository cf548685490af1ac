"""Find conditioner plugins through the ``tokenlm.conditioners`` entry-point group.

A package registers a conditioner in its ``pyproject.toml``::

    [project.entry-points."tokenlm.conditioners"]
    t5 = "conditioners.text.t5:T5Conditioner"

and recipes name it by that key (``kind: t5``). Plugins are imported only when asked for, so listing the
available kinds never imports heavy dependencies such as ``transformers``.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from conditioners.base import Conditioner

GROUP = "tokenlm.conditioners"


def _entry_points() -> dict[str, EntryPoint]:
    """Entry points of the conditioner group, by name (the kind)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_conditioners() -> list[str]:
    """Sorted kinds of every installed conditioner plugin (nothing is imported)."""
    return sorted(_entry_points())


def get_conditioner_class(kind: str) -> type[Conditioner]:
    """Import and return the :class:`Conditioner` subclass registered as ``kind``.

    Raises:
        ValueError: no plugin is registered under ``kind`` (the message lists the known kinds).
        ImportError: the plugin failed to import; the original error is chained.
        TypeError: the entry point does not name a :class:`Conditioner` subclass.
    """
    eps = _entry_points()
    if kind not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise ValueError(
            f"unknown conditioner kind {kind!r}; known kinds: {known} (entry-point group {GROUP!r})"
        )
    ep = eps[kind]
    try:
        obj = ep.load()
    except Exception as err:
        raise ImportError(
            f"conditioner plugin {kind!r} (entry point {ep.name} = {ep.value!r} in group {GROUP!r}) "
            f"failed to import: {type(err).__name__}: {err}"
        ) from err
    if not (isinstance(obj, type) and issubclass(obj, Conditioner)):
        raise TypeError(
            f"conditioner plugin {kind!r} (entry point {ep.value!r}) is {obj!r}, not a Conditioner subclass"
        )
    return obj


def build_conditioner(kind: str, config: dict[str, Any], asset_dir: str | Path | None = None) -> Conditioner:
    """Build the conditioner ``kind`` from its ``config()`` dict and, if it has some, its asset folder.

    Example:
        >>> cond = build_conditioner("t5", {"attribute": "description", "output_dim": 1024,
        ...                                 "encoder_path": "/models/flan-t5-base"})  # doctest: +SKIP
    """
    cls = get_conditioner_class(kind)
    return cls.from_config(dict(config), Path(asset_dir) if asset_dir is not None else None)

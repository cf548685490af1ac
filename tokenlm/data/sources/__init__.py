"""Captioned audio sources found through the ``tokenlm.data_sources`` entry-point group: ``music`` (melodies
arranged for General MIDI instruments and rendered by FluidSynth), ``speech`` (espeak-ng), ``recorded`` (packaged
recordings). ``tokenlm data NAME`` builds any of them; a third-party package adds one in its ``pyproject.toml``::

    [project.entry-points."tokenlm.data_sources"]
    birds = "mypackage.birds:BirdSource"

See :mod:`tokenlm.data.sources.base` for the interface and the shared build engine.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

from tokenlm.data.sources.base import (
    Clip,
    Credit,
    DataSource,
    MissingRequirement,
    Skipped,
    build,
)

GROUP = "tokenlm.data_sources"

__all__ = ["GROUP", "Clip", "Credit", "DataSource", "MissingRequirement", "Skipped", "available_sources", "build",
           "get_source"]


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_sources() -> list[str]:
    """Sorted names of the installed data sources (nothing is imported)."""
    return sorted(_entry_points())


@functools.cache
def get_source(name: str) -> DataSource:
    """The data source registered as ``name`` (one instance per process).

    Raises:
        ValueError: no source is registered under ``name`` (the message lists the known ones).
        TypeError: the entry point does not name a :class:`DataSource` subclass.
    """
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise ValueError(f"unknown data source {name!r}; known: {known} (entry-point group {GROUP!r})")
    obj = eps[name].load()
    if not (isinstance(obj, type) and issubclass(obj, DataSource)):
        raise TypeError(f"data source {name!r} (entry point {eps[name].value!r}) is {obj!r}, not a DataSource subclass")
    return obj()

"""The backend registry: generation backends found through the ``tokenlm.backends`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

GROUP = "tokenlm.backends"


def available_backends() -> list[str]:
    """Names of the installed backends (``lm``, ``ldm``, plugins)."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def get_backend_class(name: str) -> Any:
    """The backend class registered as ``name``; unknown names list the installed ones."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if name not in found:
        raise ValueError(f"unknown backend {name!r}; installed backends: {', '.join(sorted(found)) or 'none'}")
    try:
        return found[name].load()
    except Exception as error:  # a broken plugin must name itself
        raise ImportError(f"backend plugin {name!r} ({found[name].value}) failed to import: {error}") from error

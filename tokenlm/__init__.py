"""tokenlm: text-to-audio and text-to-music generation.

``tokenlm.TextToAudio`` and ``tokenlm.Audio`` are loaded on first use (PEP 562), so ``import tokenlm`` and the
``tokenlm`` command's ``--help`` do not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenlm.version import __version__

if TYPE_CHECKING:
    from tokenlm.api import Audio, TextToAudio

__all__ = ["Audio", "TextToAudio", "__version__"]

#: the names loaded on first use, and the module holding them
_LAZY = {"Audio": "tokenlm.api", "TextToAudio": "tokenlm.api"}


def __getattr__(name: str) -> Any:
    """Import the user API the first time ``tokenlm.TextToAudio`` / ``tokenlm.Audio`` is read."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tokenlm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

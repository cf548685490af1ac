"""Read torch pickles (``.bin`` / ``.th`` / ``.pt``) of other libraries safely: tensors and plain containers only.

``torch.load(weights_only=True)`` never executes code from the file; a file that needs more (a pickled class, a
function) is refused with an error saying so, as are truncated and non-torch files.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch


def load_torch_file(path: str | Path, what: str) -> Any:
    """The object saved in ``path`` (tensors, dicts, lists, strings, numbers), read with ``weights_only=True``.

    Args:
        path: the file.
        what: what the file should be, for error messages (e.g. ``"audiocraft LM checkpoint"``).
    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is truncated, not a torch file, or holds objects other than weights.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{what} {str(path)!r} holds objects other than weights (refused: tokenlm reads torch files with "
            f"weights_only=True and never runs pickled code): {err}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, AttributeError, KeyError, ValueError) as err:
        raise ValueError(f"{what} {str(path)!r} is not a readable torch file (truncated or corrupt?): {err}") from err


def load_state_dict_file(path: str | Path, what: str, key: str | None = None) -> dict[str, torch.Tensor]:
    """A ``{name: tensor}`` state dict from ``path`` (or from ``obj[key]`` when the file holds a package dict).

    Raises:
        ValueError: the file (or its ``key`` entry) is not a mapping of names to tensors.
    """
    obj = load_torch_file(path, what)
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"{what} {str(path)!r} has no {key!r} entry (found: {found})")
        obj = obj[key]
    return check_state_dict(obj, f"{what} {str(path)!r}")


def check_state_dict(obj: Any, what: str) -> dict[str, torch.Tensor]:
    """``obj`` itself when it maps strings to tensors; ValueError naming the first offending entry otherwise."""
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not a state dict: it holds a {type(obj).__name__}, not a dict of tensors")
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{what} is not a state dict: entry {name!r} is a {type(value).__name__}, not a tensor"
            )
    return obj

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


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``module.load_state_dict(state, strict=True)``; a ValueError naming ``what`` (e.g. ``"MusicGen decoder"``)
    and the missing / unexpected / misshapen tensors on any mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"the {what} weights do not match its config: {err}") from err


class TensorPool:
    """The tensors of a foreign state dict, taken one by one so a converter can prove it used every one.

    Example:
        >>> pool = TensorPool({"a.weight": torch.zeros(2)}, "checkpoint")
        >>> pool.take("a.weight").shape
        torch.Size([2])
        >>> pool.check_consumed()
    """

    def __init__(self, state: dict[str, torch.Tensor], what: str) -> None:
        self._state = dict(state)
        self.what = what

    def has(self, name: str) -> bool:
        return name in self._state

    def take(self, name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """Remove and return tensor ``name`` (ValueError naming it when absent or not of ``shape``)."""
        if name not in self._state:
            raise ValueError(f"the {self.what} lacks the tensor {name!r}")
        tensor = self._state.pop(name)
        if shape is not None and tuple(tensor.shape) != tuple(shape):
            raise ValueError(
                f"the {self.what} tensor {name!r} has shape {tuple(tensor.shape)}, expected {tuple(shape)} "
                "from its config"
            )
        return tensor

    def take_prefix(self, prefix: str) -> dict[str, torch.Tensor]:
        """Every remaining tensor under ``prefix``, keyed without it."""
        return {name[len(prefix) :]: self._state.pop(name) for name in sorted(self._state) if name.startswith(prefix)}

    def names(self) -> list[str]:
        """The names not taken yet, sorted."""
        return sorted(self._state)

    def check_consumed(self) -> None:
        """ValueError listing the tensors no mapping took (an architecture variant the converter does not know)."""
        left = self.names()
        if left:
            shown = ", ".join(left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
            raise ValueError(
                f"the {self.what} has tensors this converter does not know (an unsupported variant?): {shown}"
            )

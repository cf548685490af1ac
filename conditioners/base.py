"""The conditioner interface shared by every backend.

A conditioner turns the values of one attribute (``"description"``, ``"genre"``, ``"seconds_total"``...)
into a :class:`Condition`: a sequence of embeddings and a validity mask. ``None`` is every conditioner's
null value: the unconditional input used for classifier-free guidance (CFG). A null row comes back with
zero embeddings and an all-False mask; attention layers must treat such a row without producing NaN.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Condition:
    """Embeddings of one attribute for a batch.

    Attributes:
        embeds: ``[B, S, D]`` float embeddings; rows of null (CFG-dropped) samples are zero.
        mask: ``[B, S]`` bool, True where a position holds a real token.
    """

    embeds: torch.Tensor  # [B, S, D]
    mask: torch.Tensor  # [B, S] bool

    def __post_init__(self) -> None:
        if self.embeds.dim() != 3 or self.mask.shape != self.embeds.shape[:2]:
            raise ValueError(
                f"Condition needs embeds [B, S, D] and mask [B, S]; got {tuple(self.embeds.shape)} "
                f"and {tuple(self.mask.shape)}"
            )
        if self.mask.dtype != torch.bool:
            self.mask = self.mask.bool()

    @property
    def batch_size(self) -> int:
        return int(self.embeds.shape[0])

    @property
    def length(self) -> int:
        return int(self.embeds.shape[1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Condition:
        return Condition(self.embeds.to(device=device, dtype=dtype), self.mask.to(device=device))

    def pad(self, length: int) -> Condition:
        """Right-pad the sequence to ``length`` positions with zero embeddings and False mask."""
        extra = length - self.length
        if extra < 0:
            raise ValueError(f"cannot pad a condition of length {self.length} to the shorter length {length}")
        if extra == 0:
            return self
        embeds = torch.nn.functional.pad(self.embeds, (0, 0, 0, extra))  # [B, length, D]
        mask = torch.nn.functional.pad(self.mask, (0, extra), value=False)  # [B, length]
        return Condition(embeds, mask)

    @staticmethod
    def cat_batch(conditions: list[Condition]) -> Condition:
        """Stack conditions along the batch, padding shorter sequences with masked zeros."""
        length = max(c.length for c in conditions)
        parts = [c.pad(length) for c in conditions]
        return Condition(torch.cat([p.embeds for p in parts]), torch.cat([p.mask for p in parts]))

    @staticmethod
    def cat_sequence(conditions: list[Condition]) -> Condition:
        """Concatenate conditions of one batch along the sequence (masks kept): ``[B, sum S_i, D]``."""
        if len(conditions) == 1:
            return conditions[0]
        embeds = torch.cat([c.embeds for c in conditions], dim=1)  # [B, S, D]
        return Condition(embeds, torch.cat([c.mask for c in conditions], dim=1))

    @staticmethod
    def from_rows(rows: list[torch.Tensor | None], dim: int, device: torch.device | str | None = None) -> Condition:
        """Pad per-sample embeddings ``[S_i, dim]`` (None: a null row) into a condition ``[B, max S_i, dim]``.

        A null row comes back as zeros with an all-False mask; every row has at least one position.
        """
        length = max([1] + [row.shape[0] for row in rows if row is not None])
        dtype = next((row.dtype for row in rows if row is not None), torch.float32)
        embeds = torch.zeros(len(rows), length, dim, dtype=dtype, device=device)  # [B, S, D]
        mask = torch.zeros(len(rows), length, dtype=torch.bool, device=device)  # [B, S]
        for i, row in enumerate(rows):
            if row is not None:
                embeds[i, : row.shape[0]] = row
                mask[i, : row.shape[0]] = True
        return Condition(embeds, mask)


def pad_id_rows(rows: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad per-sample token ids into ``ids`` ``[B, max len]`` (``pad_id`` after each row) and ``mask`` ``[B, S]``.

    An empty row (a null value) is all padding with an all-False mask; every row has at least one position.
    """
    length = max(1, max((len(row) for row in rows), default=0))
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)  # [B, S]
    mask = torch.zeros(len(rows), length, dtype=torch.bool)  # [B, S]
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    return ids, mask


@dataclass(frozen=True)
class AudioValue:
    """An attribute value that is audio: the training clip a conditioner such as CLAP embeds.

    The trainer passes one per sample (``{"description": AudioValue(wav, rate)}``) to conditioners whose
    :attr:`Conditioner.uses_training_audio` is true; the conditioner resamples it to its own rate.

    Attributes:
        wav: ``[C, N]`` float waveform (only the valid samples of the clip).
        sample_rate: its sample rate in Hz.
    """

    wav: torch.Tensor  # [C, N]
    sample_rate: int

    def __post_init__(self) -> None:
        if not isinstance(self.wav, torch.Tensor) or self.wav.dim() != 2 or not self.wav.is_floating_point():
            shape = tuple(self.wav.shape) if isinstance(self.wav, torch.Tensor) else type(self.wav).__name__
            raise ValueError(f"AudioValue needs a float waveform [C, N], got {shape}")
        if self.wav.shape[-1] == 0:
            raise ValueError("AudioValue got an empty waveform (0 samples)")
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise ValueError(f"AudioValue.sample_rate must be a positive int, got {self.sample_rate!r}")

    def __repr__(self) -> str:
        return f"AudioValue({tuple(self.wav.shape)} @ {self.sample_rate} Hz)"

    def after(self, seconds: float) -> AudioValue | None:
        """The audio from ``seconds`` on (None when nothing is left): what a later generation window follows."""
        start = round(max(0.0, float(seconds)) * self.sample_rate)
        return AudioValue(self.wav[:, start:], self.sample_rate) if start < self.wav.shape[-1] else None


class Conditioner(nn.Module, ABC):
    """Base class of all conditioners (found through the ``tokenlm.conditioners`` entry-point group).

    Subclasses implement :meth:`prepare` (CPU-side work such as tokenisation), :meth:`forward`
    (the embedding itself), :meth:`config` (JSON-able constructor arguments) and, when they own files
    such as a tokenizer, :meth:`save_assets` and the ``asset_dir`` argument of :meth:`from_config`.
    Weights are not assets: they live in the checkpoint's ``model.safetensors`` with the rest of the model.
    """

    #: the key this class is registered under in the entry-point group (e.g. ``"t5"``)
    kind: ClassVar[str] = ""
    #: the Python types a non-null value may have
    value_types: ClassVar[tuple[type, ...]] = (str,)

    def __init__(self, attribute: str, output_dim: int) -> None:
        super().__init__()
        if not attribute or not isinstance(attribute, str):
            raise ValueError(f"a conditioner needs a non-empty attribute name, got {attribute!r}")
        self.attribute = attribute
        self.output_dim = int(output_dim)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    #: True when the condition runs along the audio's time axis (a melody's chroma): a backend generating audio longer
    #: than its window gives each later window the value from that window's start (:meth:`AudioValue.after`)
    time_aligned: ClassVar[bool] = False

    @property
    def uses_training_audio(self) -> bool:
        """True when training feeds this conditioner the clip itself (an :class:`AudioValue`) as its value."""
        return False

    def validate(self, value: Any) -> None:
        """Raise ``ValueError`` naming the bad value when ``value`` is not acceptable (None always is)."""
        if value is None:
            return
        if not isinstance(value, self.value_types) or isinstance(value, bool):
            allowed = " or ".join(t.__name__ for t in self.value_types)
            raise ValueError(
                f"attribute {self.attribute!r} takes {allowed} values (or None for the null condition), "
                f"got {type(value).__name__} {value!r}"
            )
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                f"attribute {self.attribute!r} got an empty string; give some text, or None for no condition"
            )

    @abstractmethod
    def prepare(self, values: list[Any]) -> Any:
        """CPU-side preprocessing (tokenisation) of a batch of values; ``None`` marks a null value."""

    @abstractmethod
    def forward(self, inputs: Any) -> Condition:
        """Embed prepared inputs: returns a :class:`Condition` with ``output_dim`` features."""

    def encode(self, values: list[Any]) -> Condition:
        """``prepare`` then ``forward``: the convenience path for a list of raw values."""
        for value in values:
            self.validate(value)
        return self(self.prepare(values))

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments, enough with the assets to rebuild this conditioner."""

    def save_assets(self, directory: Path) -> None:
        """Write non-weight files (tokenizer, encoder config) into ``directory``. Default: none."""

    @classmethod
    def from_config(cls, config: dict[str, Any], asset_dir: Path | None = None) -> Conditioner:
        """Rebuild the architecture (weights are loaded separately from ``model.safetensors``)."""
        return cls(**config)

"""Shared machinery of conditioners built on a frozen Hugging Face text encoder (MiniLM, CLAP text).

- Tokenisation happens once per batch, on CPU, in :meth:`prepare`.
- The encoder runs under ``torch.no_grad`` and stays in eval mode; only the projection trains.
- An optional on-disk :class:`~conditioners.cache.EmbeddingCache` keyed by text skips the encoder for
  captions already seen (the cache holds the encoder output, before the trainable projection).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from conditioners.base import Condition, Conditioner
from conditioners.cache import EmbeddingCache, module_fingerprint


def check_model_folder(folder: str | Path, what: str, model_types: tuple[str, ...] | None = None) -> Path:
    """A local Hugging Face folder holding a ``config.json`` (of one of ``model_types``), or a clear error."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{what} folder {str(folder)!r} does not exist: give a local Hugging Face folder (config.json, weights, "
            "tokenizer files); nothing is ever downloaded"
        )
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{str(folder)!r} has no config.json: it is not a Hugging Face {what} folder")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_types is not None and model_type not in model_types:
        raise ValueError(f"{str(folder)!r} holds a {model_type!r} model; the {what} conditioner needs {model_types}")
    return folder


class FrozenTextConditioner(Conditioner):
    """Base class: text -> frozen encoder features ``[B, S, H]`` -> ``Linear(H, output_dim)``.

    Subclasses set ``self.encoder_module`` (what the cache fingerprints) and implement :meth:`encode_tokens`.

    Args:
        attribute: the attribute this conditioner reads.
        output_dim: feature size of the returned embeddings (``None``: the encoder's ``hidden_size``).
        tokenizer: a Hugging Face tokenizer.
        hidden_size: feature size of :meth:`encode_tokens`.
        max_length: truncation length in tokens.
        cache_dir: folder of an on-disk embedding cache (None: no cache). Not saved in checkpoints.
        project: ``"auto"`` adds the projection only when ``hidden_size != output_dim``.
    """

    value_types = (str,)

    def __init__(
        self,
        attribute: str,
        output_dim: int | None,
        *,
        tokenizer: Any,
        hidden_size: int,
        max_length: int | None,
        cache_dir: str | Path | None = None,
        project: bool | Literal["auto"] = "auto",
    ) -> None:
        output_dim = int(hidden_size) if output_dim is None else int(output_dim)
        super().__init__(attribute, output_dim)
        if project not in ("auto", True, False):
            raise ValueError(f"project must be 'auto', True or False, got {project!r}")
        if project is False and output_dim != hidden_size:
            raise ValueError(f"project=False needs output_dim == encoder width ({hidden_size}), got {output_dim}")
        if max_length is not None and int(max_length) < 1:
            raise ValueError(f"max_length must be positive or None, got {max_length}")
        self.tokenizer = tokenizer
        self.hidden_size = int(hidden_size)
        self.max_length = None if max_length is None else int(max_length)
        self.set_cache_dir(cache_dir)
        use_proj = project is True or (project == "auto" and output_dim != hidden_size)
        self.output_proj: nn.Module = nn.Linear(hidden_size, output_dim) if use_proj else nn.Identity()

    # ------------------------------------------------------------------ for subclasses
    @property
    @abstractmethod
    def encoder_module(self) -> nn.Module:
        """The frozen encoder (kept in eval mode, fingerprinted by the cache)."""

    @abstractmethod
    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder features ``[B, S, H]`` and their validity mask ``[B, S]`` (called under no_grad)."""

    def cache_options(self) -> tuple[Any, ...]:
        """Options that change the encoder output, folded into the cache namespace."""
        return (self.kind, self.max_length)

    # ------------------------------------------------------------------ shared behaviour
    def freeze_encoder(self) -> None:
        self.encoder_module.requires_grad_(False)
        self.encoder_module.eval()

    def train(self, mode: bool = True) -> FrozenTextConditioner:
        """Set training mode; the frozen encoder stays in eval mode (no dropout)."""
        super().train(mode)
        self.encoder_module.eval()
        return self

    def set_cache_dir(self, cache_dir: str | Path | None) -> None:
        """Use (or, with None, stop using) an on-disk embedding cache in ``cache_dir``.

        A runtime option, not part of :meth:`config`: a checkpoint never points at a training machine's folder.
        """
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._cache: EmbeddingCache | None = None

    @property
    def cache(self) -> EmbeddingCache | None:
        """The embedding cache (built on first use: the namespace fingerprints the encoder weights)."""
        if self.cache_dir is None:
            return None
        if self._cache is None:
            self._cache = EmbeddingCache(self.cache_dir, module_fingerprint(self.encoder_module, *self.cache_options()))
        return self._cache

    def prepare(self, values: list[Any]) -> dict[str, Any]:
        """Tokenise on CPU the texts the cache does not hold; cached features are read here too.

        Returns ``texts`` (None for a null row), ``cached`` (row -> ``[S_i, H]``), ``rows`` (the rows to encode)
        and ``input_ids`` / ``attention_mask`` ``[n, S]`` for them (None when every text was cached).
        """
        if not values:
            raise ValueError(f"attribute {self.attribute!r}: prepare needs at least one value")
        for value in values:
            self.validate(value)
        texts = [value if isinstance(value, str) else None for value in values]
        cached: dict[int, torch.Tensor] = {}
        cache = self.cache
        if cache is not None:
            for i, text in enumerate(texts):
                if text is not None and (hit := cache.load(text)) is not None:
                    cached[i] = hit
        rows = [i for i, text in enumerate(texts) if text is not None and i not in cached]
        batch = None
        if rows:
            batch = self.tokenizer(
                [texts[i] for i in rows], padding="longest", truncation=self.max_length is not None,
                max_length=self.max_length, return_tensors="pt",
            )
        return {
            "texts": texts, "cached": cached, "rows": rows,
            "input_ids": None if batch is None else batch["input_ids"],  # [n, S]
            "attention_mask": None if batch is None else batch["attention_mask"],  # [n, S]
        }

    def text_rows(self, inputs: dict[str, Any]) -> list[torch.Tensor | None]:
        """Encoder features per sample (``[S_i, H]`` on the module's device; None for null or non-text rows)."""
        device = self.device
        rows: list[torch.Tensor | None] = [None] * len(inputs["texts"])
        for i, hit in inputs["cached"].items():
            rows[i] = hit.to(device)
        if inputs["rows"]:
            with torch.no_grad():
                features, mask = self.encode_tokens(
                    inputs["input_ids"].to(device), inputs["attention_mask"].to(device)
                )  # [n, S, H], [n, S]
            cache = self.cache
            for j, i in enumerate(inputs["rows"]):
                rows[i] = features[j][mask[j].bool()]  # [S_i, H]
                if cache is not None:
                    cache.store(inputs["texts"][i], rows[i])
        return rows

    def project(self, rows: list[torch.Tensor | None]) -> Condition:
        """Pad per-sample features and project them: embeds ``[B, S, output_dim]`` (zero where masked)."""
        condition = Condition.from_rows(rows, self.hidden_size, self.device)  # [B, S, H]
        embeds = condition.embeds
        if isinstance(self.output_proj, nn.Linear):
            embeds = embeds.to(self.output_proj.weight.dtype)
        embeds = self.output_proj(embeds) * condition.mask.unsqueeze(-1).to(embeds.dtype)  # [B, S, D]
        return Condition(embeds, condition.mask)

    def forward(self, inputs: dict[str, Any]) -> Condition:
        """Embed prepared texts: embeds ``[B, S, output_dim]``, mask ``[B, S]``."""
        return self.project(self.text_rows(inputs))

    def projects(self) -> bool:
        return isinstance(self.output_proj, nn.Linear)

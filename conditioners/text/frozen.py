"""Shared machinery of conditioners built on a frozen Hugging Face text encoder (MiniLM, CLAP text, T5).

- Tokenisation happens once per batch, on CPU, in :meth:`prepare`.
- The encoder runs under ``torch.no_grad`` and stays in eval mode; only the projection trains (unless
  ``finetune``, which trains the encoder too and then allows no cache).
- An optional on-disk :class:`~conditioners.cache.EmbeddingCache` keyed by text skips the encoder for
  captions already seen (the cache holds the encoder output, before the trainable projection).
"""

from __future__ import annotations

import contextlib
import json
import math
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from conditioners.base import Condition, Conditioner
from conditioners.cache import EmbeddingCache, module_fingerprint
from conditioners.text.numbers import NumberFeatures, find_numbers, token_values

#: distinct texts whose per-token number values are kept (a training set's captions fit; cleared when full)
NUMBER_VALUES_CACHE = 65536


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


def load_pretrained(model_class: Any, folder: Path, what: str) -> Any:
    """``model_class.from_pretrained`` of a local folder in float32 (ValueError naming ``what`` when it has no
    weights). Float32 whatever the file stores: transformers would otherwise keep a float16 file's dtype, and
    frozen encoders run in float32 (a shipped encoder stores float16 to halve its size)."""
    import torch

    try:
        return model_class.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise ValueError(f"{str(folder)!r} has no loadable {what} weights: {err}") from err


def load_tokenizer(folder: Path, what: str | None = None) -> Any:
    """The tokenizer saved in ``folder`` (ValueError when it has none)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        name = "tokenizer" if what is None else f"{what} tokenizer"
        raise ValueError(f"{str(folder)!r} has no usable {name} files: {err}") from err


class FrozenTextConditioner(Conditioner):
    """Base class: text -> frozen encoder features ``[B, S, H]`` -> ``Linear(H, output_dim)``.

    Subclasses set ``self.encoder_module`` (what the cache fingerprints) and implement :meth:`encode_tokens`
    and :meth:`load_assets`; :meth:`save_assets` writes the encoder config and :attr:`preprocessor` files to
    ``directory / asset_subdir``.

    Args:
        attribute: the attribute this conditioner reads.
        output_dim: feature size of the returned embeddings (``None``: the encoder's ``hidden_size``).
        tokenizer: a Hugging Face tokenizer.
        hidden_size: feature size of :meth:`encode_tokens`.
        max_length: truncation length in tokens.
        cache_dir: folder of an on-disk embedding cache (None: no cache). Not saved in checkpoints.
        project: ``"auto"`` adds the projection only when ``hidden_size != output_dim``.
        finetune: train the encoder too (it then runs with grad, follows train/eval mode and takes no cache).
        numbers: add to every token of a number ("440 Hz", "three", "A4") a learned embedding of its value
            (:mod:`conditioners.text.numbers`); needs a fast tokenizer (character offsets).
    """

    value_types = (str,)
    #: sub-folder of a conditioner asset directory that holds the encoder config and tokenizer files
    asset_subdir: ClassVar[str] = "encoder"
    #: the constructor argument naming a local model folder (dropped when rebuilding from assets)
    path_argument: ClassVar[str] = "encoder_path"
    #: how errors name the encoder's feature size
    hidden_name: ClassVar[str] = "encoder width"

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
        finetune: bool = False,
        numbers: bool = False,
    ) -> None:
        output_dim = int(hidden_size) if output_dim is None else int(output_dim)
        super().__init__(attribute, output_dim)
        if project not in ("auto", True, False):
            raise ValueError(f"project must be 'auto', True or False, got {project!r}")
        if project is False and output_dim != hidden_size:
            raise ValueError(f"project=False needs output_dim == {self.hidden_name} ({hidden_size}), got {output_dim}")
        if max_length is not None and int(max_length) < 1:
            raise ValueError(f"max_length must be positive or None, got {max_length}")
        self.tokenizer = tokenizer
        self.hidden_size = int(hidden_size)
        self.max_length = None if max_length is None else int(max_length)
        self.finetune = bool(finetune)
        self.set_cache_dir(cache_dir)
        use_proj = project is True or (project == "auto" and output_dim != hidden_size)
        self.output_proj: nn.Module = nn.Linear(hidden_size, output_dim) if use_proj else nn.Identity()
        if numbers and not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                f"attribute {self.attribute!r}: numbers=True needs a fast tokenizer (character offsets); "
                f"got {type(tokenizer).__name__}"
            )
        self.number_features = NumberFeatures(output_dim) if numbers else None
        self._number_values: dict[str, list[float]] = {}  # text -> per-token values (see number_values)

    # ------------------------------------------------------------------ for subclasses
    @property
    @abstractmethod
    def encoder_module(self) -> nn.Module:
        """The frozen encoder (kept in eval mode, fingerprinted by the cache)."""

    @abstractmethod
    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder features ``[B, S, H]`` and their validity mask ``[B, S]`` (called under no_grad)."""

    @classmethod
    @abstractmethod
    def load_assets(cls, folder: Path) -> dict[str, Any]:
        """Constructor keyword arguments (a randomly initialised encoder, its tokenizer) from saved assets."""

    def cache_options(self) -> tuple[Any, ...]:
        """Options that change the encoder output, folded into the cache namespace."""
        return (self.kind, self.max_length)

    @property
    def preprocessor(self) -> Any:
        """What :meth:`save_assets` writes next to the encoder config (the tokenizer by default)."""
        return self.tokenizer

    # ------------------------------------------------------------------ shared behaviour
    def freeze_encoder(self) -> None:
        """Freeze the encoder (no grad, eval mode) unless it is fine-tuned."""
        if not self.finetune:
            self.encoder_module.requires_grad_(False)
            self.encoder_module.eval()

    def train(self, mode: bool = True) -> FrozenTextConditioner:
        """Set training mode; a frozen encoder stays in eval mode (no dropout) whatever ``mode`` is."""
        super().train(mode)
        if not self.finetune:
            self.encoder_module.eval()
        return self

    def set_cache_dir(self, cache_dir: str | Path | None) -> None:
        """Use (or, with None, stop using) an on-disk embedding cache in ``cache_dir``.

        A runtime option, not part of :meth:`config`: a checkpoint never points at a training machine's folder.
        """
        if cache_dir is not None and self.finetune:
            raise ValueError(f"attribute {self.attribute!r}: a fine-tuned encoder cannot use an embedding cache")
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
            "number_values": self.number_values(texts) if self.number_features is not None else None,
        }

    def number_values(self, texts: list[str | None]) -> list[list[float] | None]:
        """Per text, the value of the number each token belongs to (NaN elsewhere; None for a null row), in the
        order of the encoder's unpadded tokens."""
        out: list[list[float] | None] = []
        for text in texts:
            if text is None:
                out.append(None)
                continue
            values = self._number_values.get(text)
            if values is None:  # tokenise once per distinct text, not once per training step
                encoding = self.tokenizer(
                    text, truncation=self.max_length is not None, max_length=self.max_length,
                    return_offsets_mapping=True,
                )
                values = token_values(encoding["offset_mapping"], find_numbers(text))
                if len(self._number_values) >= NUMBER_VALUES_CACHE:
                    self._number_values.clear()
                self._number_values[text] = values
            out.append(values)
        return out

    def text_rows(self, inputs: dict[str, Any]) -> list[torch.Tensor | None]:
        """Encoder features per sample (``[S_i, H]`` on the module's device; None for null or non-text rows)."""
        device = self.device
        rows: list[torch.Tensor | None] = [None] * len(inputs["texts"])
        for i, hit in inputs["cached"].items():
            rows[i] = hit.to(device)
        if inputs["rows"]:
            with contextlib.nullcontext() if self.finetune else torch.no_grad():
                features, mask = self.encode_tokens(
                    inputs["input_ids"].to(device), inputs["attention_mask"].to(device)
                )  # [n, S, H], [n, S]
            cache = self.cache
            for j, i in enumerate(inputs["rows"]):
                rows[i] = features[j][mask[j].bool()]  # [S_i, H]
                if cache is not None:
                    cache.store(inputs["texts"][i], rows[i])
        return rows

    def project(self, rows: list[torch.Tensor | None], number_values: list[list[float] | None] | None = None
                ) -> Condition:
        """Pad per-sample features and project them: embeds ``[B, S, output_dim]`` (zero where masked).

        With ``number_values`` (see :meth:`number_values`) the number tokens also get their value embedding.
        """
        condition = Condition.from_rows(rows, self.hidden_size, self.device)  # [B, S, H]
        embeds = condition.embeds
        if isinstance(self.output_proj, nn.Linear):
            embeds = embeds.to(self.output_proj.weight.dtype)
        embeds = self.output_proj(embeds)  # [B, S, D]
        if self.number_features is not None and number_values is not None:
            embeds = embeds + self.embed_numbers(rows, number_values, embeds.shape[1]).to(embeds.dtype)
        embeds = embeds * condition.mask.unsqueeze(-1).to(embeds.dtype)  # [B, S, D]
        return Condition(embeds, condition.mask)

    def embed_numbers(self, rows: list[torch.Tensor | None], number_values: list[list[float] | None],
                      length: int) -> torch.Tensor:
        """Value embeddings ``[B, length, D]`` of the number tokens (zero elsewhere)."""
        values = torch.full((len(rows), length), math.nan)  # [B, S]
        for i, (row, row_values) in enumerate(zip(rows, number_values, strict=True)):
            if row is None or row_values is None:
                continue
            if len(row_values) != row.shape[0]:
                raise RuntimeError(
                    f"attribute {self.attribute!r}: {len(row_values)} number slots for {row.shape[0]} encoder tokens"
                )
            values[i, : len(row_values)] = torch.tensor(row_values)
        values = values.to(self.device)
        is_number = ~values.isnan()  # [B, S]
        embeds = self.number_features(values.nan_to_num(0.0))  # [B, S, D]
        return embeds * is_number.unsqueeze(-1).to(embeds.dtype)

    def forward(self, inputs: dict[str, Any]) -> Condition:
        """Embed prepared texts: embeds ``[B, S, output_dim]``, mask ``[B, S]``."""
        return self.project(self.text_rows(inputs), inputs.get("number_values"))

    def projects(self) -> bool:
        return isinstance(self.output_proj, nn.Linear)

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        """Constructor arguments; with :meth:`save_assets` output they rebuild this conditioner."""
        config = {
            "attribute": self.attribute, "output_dim": self.output_dim, "max_length": self.max_length,
            "project": self.projects(),
        }
        if self.number_features is not None:
            config["numbers"] = True
        return config

    def save_assets(self, directory: Path) -> None:
        """Write the encoder config and :attr:`preprocessor` files (no weights) to ``directory / asset_subdir``."""
        target = Path(directory) / self.asset_subdir
        target.mkdir(parents=True, exist_ok=True)
        self.encoder_module.config.save_pretrained(target)
        self.preprocessor.save_pretrained(target)

    @classmethod
    def from_config(cls, config: dict[str, Any], asset_dir: Path | None = None) -> FrozenTextConditioner:
        """Rebuild from :meth:`config` and the saved assets (random weights: load the state dict after).

        Without ``asset_dir`` the config must name a local model folder (pretrained weights are loaded).
        """
        config = dict(config)
        if asset_dir is None:
            return cls(**config)
        config.pop(cls.path_argument, None)
        return cls(**config, **cls.load_assets(Path(asset_dir) / cls.asset_subdir))

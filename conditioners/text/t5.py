"""T5 / FLAN-T5 text conditioner (as in MusicGen and AudioGen), loaded from a local Hugging Face folder.

The module layout mirrors Hugging Face MusicGen (``text_encoder`` + ``enc_to_dec_proj``) and audiocraft's
``T5Conditioner`` (``t5`` + ``output_proj``) so their weights map onto ``encoder`` and ``output_proj`` by
renaming keys. Null values (``None``) come out as all-False mask rows with exactly zero embeddings.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5Config, T5EncoderModel

from conditioners.base import Condition, Conditioner

#: sub-folder of a conditioner asset directory that holds the T5 config and tokenizer files
ASSET_SUBDIR = "t5"


def _read_t5_config(folder: Path) -> T5Config:
    """The T5 config of a local Hugging Face folder, with clear errors when it is missing or not T5."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"T5 folder {str(folder)!r} does not exist: the T5 conditioner needs a local Hugging Face "
            "T5 / FLAN-T5 folder (config.json, weights, tokenizer files); it never downloads anything"
        )
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{str(folder)!r} has no config.json: it is not a Hugging Face T5 folder")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type != "t5":
        raise ValueError(f"{str(folder)!r} holds a {model_type!r} model, not a T5 / FLAN-T5 one")
    return T5Config.from_pretrained(folder, local_files_only=True)


def _load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``folder`` (ValueError when it has none)."""
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ValueError(f"{str(folder)!r} has no usable T5 tokenizer files: {err}") from err


class T5Conditioner(Conditioner):
    """Text embeddings from a (by default frozen) T5 encoder, projected to ``output_dim``.

    Args:
        attribute: the attribute this conditioner reads (``"description"``).
        output_dim: feature size of the returned embeddings; ``None`` keeps the encoder's ``d_model``.
        encoder_path: local Hugging Face T5 / FLAN-T5 folder (a full T5 checkpoint works: the decoder is
            dropped). Not needed when ``encoder`` and ``tokenizer`` are given.
        encoder: a ready ``T5EncoderModel``.
        tokenizer: the matching tokenizer.
        max_length: truncation length in tokens (``None``: no truncation).
        finetune: train the encoder too; otherwise it is frozen, runs without grad and stays in eval mode.
        project: ``"auto"`` adds ``Linear(d_model, output_dim)`` only when the sizes differ; ``True`` /
            ``False`` force it on or off.

    Example:
        >>> cond = T5Conditioner("description", 1024, "/models/flan-t5-base")  # doctest: +SKIP
        >>> cond.encode(["a dog barks twice", None]).embeds.shape  # doctest: +SKIP
        torch.Size([2, 7, 1024])
    """

    kind = "t5"
    value_types = (str,)

    def __init__(
        self,
        attribute: str = "description",
        output_dim: int | None = None,
        encoder_path: str | Path | None = None,
        *,
        encoder: T5EncoderModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        max_length: int | None = 256,
        finetune: bool = False,
        project: bool | Literal["auto"] = "auto",
    ) -> None:
        if encoder is None or tokenizer is None:
            if encoder_path is None:
                raise ValueError("T5Conditioner needs encoder_path (a local T5 folder) or encoder+tokenizer")
            folder = Path(encoder_path).expanduser()
            _read_t5_config(folder)
            if encoder is None:
                try:
                    encoder = T5EncoderModel.from_pretrained(folder, local_files_only=True)
                except OSError as err:
                    raise ValueError(f"{str(folder)!r} has no loadable T5 weights: {err}") from err
            if tokenizer is None:
                tokenizer = _load_tokenizer(folder)
        if not isinstance(encoder, T5EncoderModel):
            raise TypeError(f"encoder must be a transformers T5EncoderModel, got {type(encoder).__name__}")
        if project not in ("auto", True, False):
            raise ValueError(f"project must be 'auto', True or False, got {project!r}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be positive or None, got {max_length}")
        d_model = int(encoder.config.d_model)
        output_dim = d_model if output_dim is None else int(output_dim)
        super().__init__(attribute, output_dim)
        if project is False and output_dim != d_model:
            raise ValueError(f"project=False needs output_dim == T5 d_model ({d_model}), got {output_dim}")
        self.max_length = max_length
        self.finetune = bool(finetune)
        self.tokenizer = tokenizer
        self.encoder = encoder
        use_proj = project is True or (project == "auto" and output_dim != d_model)
        self.output_proj: nn.Module = nn.Linear(d_model, output_dim, bias=True) if use_proj else nn.Identity()
        if not self.finetune:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> T5Conditioner:
        """Set training mode; a frozen encoder stays in eval mode (no dropout) whatever ``mode`` is."""
        super().train(mode)
        if not self.finetune:
            self.encoder.eval()
        return self

    def prepare(self, values: list[str | None]) -> dict[str, torch.Tensor]:
        """Tokenise on CPU, padded to the longest value; ``None`` gives an all-False ``mask`` row.

        Returns ``input_ids`` / ``attention_mask`` ``[B, S]`` for the encoder and ``mask`` ``[B, S]`` bool
        for the output. A null row is encoded as the empty text (just ``</s>``) so the encoder never sees
        a fully masked row; its output is zeroed afterwards.
        """
        if not values:
            raise ValueError(f"attribute {self.attribute!r}: prepare needs at least one value")
        for value in values:
            self.validate(value)
        texts = ["" if value is None else value for value in values]
        batch = self.tokenizer(
            texts,
            padding="longest",
            truncation=self.max_length is not None,
            max_length=self.max_length,
            return_tensors="pt",
        )
        attention_mask = batch["attention_mask"]  # [B, S]
        null = torch.tensor([value is None for value in values], dtype=torch.bool)  # [B]
        mask = attention_mask.bool() & ~null[:, None]  # [B, S]
        return {"input_ids": batch["input_ids"], "attention_mask": attention_mask, "mask": mask}

    def forward(self, inputs: dict[str, torch.Tensor]) -> Condition:
        """Encode prepared tokens on the module's device: embeds ``[B, S, output_dim]``, mask ``[B, S]``."""
        device = self.device
        input_ids = inputs["input_ids"].to(device)  # [B, S]
        attention_mask = inputs["attention_mask"].to(device)  # [B, S]
        mask = inputs["mask"].to(device)  # [B, S] bool
        grad_context = contextlib.nullcontext() if self.finetune else torch.no_grad()
        with grad_context:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if isinstance(self.output_proj, nn.Linear):
            hidden = hidden.to(self.output_proj.weight.dtype)
        embeds = self.output_proj(hidden)  # [B, S, D]
        embeds = embeds * mask.unsqueeze(-1).to(embeds.dtype)  # padding and null rows -> exactly 0
        return Condition(embeds, mask)

    def config(self) -> dict[str, Any]:
        """Constructor arguments; with :meth:`save_assets` output they rebuild this conditioner."""
        return {
            "attribute": self.attribute,
            "output_dim": self.output_dim,
            "max_length": self.max_length,
            "finetune": self.finetune,
            "project": isinstance(self.output_proj, nn.Linear),
        }

    def save_assets(self, directory: Path) -> None:
        """Write the T5 config and tokenizer files (no weights) to ``directory / "t5"``."""
        target = Path(directory) / ASSET_SUBDIR
        target.mkdir(parents=True, exist_ok=True)
        self.encoder.config.save_pretrained(target)
        self.tokenizer.save_pretrained(target)

    @classmethod
    def from_config(cls, config: dict[str, Any], asset_dir: Path | None = None) -> T5Conditioner:
        """Rebuild from :meth:`config` and saved assets (random weights: load the state dict after).

        Without ``asset_dir`` the config must name a local ``encoder_path`` (pretrained weights are loaded).
        """
        config = dict(config)
        if asset_dir is None:
            return cls(**config)
        config.pop("encoder_path", None)
        folder = Path(asset_dir) / ASSET_SUBDIR
        encoder = T5EncoderModel(_read_t5_config(folder))
        return cls(encoder=encoder, tokenizer=_load_tokenizer(folder), **config)

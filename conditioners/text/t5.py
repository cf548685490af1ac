"""T5 / FLAN-T5 text conditioner (as in MusicGen and AudioGen), loaded from a local Hugging Face folder.

The module layout mirrors Hugging Face MusicGen (``text_encoder`` + ``enc_to_dec_proj``) and audiocraft's
``T5Conditioner`` (``t5`` + ``output_proj``) so their weights map onto ``encoder`` and ``output_proj`` by
renaming keys. Null values (``None``) come out as all-False mask rows with exactly zero embeddings.
The folder checks, tokenisation, frozen encoding, projection and persistence are those of
:class:`~conditioners.text.frozen.FrozenTextConditioner`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase, T5Config, T5EncoderModel

from conditioners.text.frozen import FrozenTextConditioner, check_model_folder, load_pretrained, load_tokenizer

#: sub-folder of a conditioner asset directory that holds the T5 config and tokenizer files
ASSET_SUBDIR = "t5"


class T5Conditioner(FrozenTextConditioner):
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
    asset_subdir = ASSET_SUBDIR
    hidden_name = "T5 d_model"

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
        numbers: bool = False,
    ) -> None:
        if encoder is None or tokenizer is None:
            if encoder_path is None:
                raise ValueError("T5Conditioner needs encoder_path (a local T5 folder) or encoder+tokenizer")
            folder = check_model_folder(encoder_path, "T5", ("t5",))
            if encoder is None:
                encoder = load_pretrained(T5EncoderModel, folder, "T5")
            if tokenizer is None:
                tokenizer = load_tokenizer(folder, "T5")
        if not isinstance(encoder, T5EncoderModel):
            raise TypeError(f"encoder must be a transformers T5EncoderModel, got {type(encoder).__name__}")
        super().__init__(
            attribute, output_dim, tokenizer=tokenizer, hidden_size=int(encoder.config.d_model),
            max_length=max_length, project=project, finetune=finetune, numbers=numbers,
        )
        self.encoder = encoder
        self.freeze_encoder()

    @property
    def encoder_module(self) -> T5EncoderModel:
        return self.encoder

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states ``[B, S, d_model]`` and the attention mask."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden, attention_mask.bool()

    def config(self) -> dict[str, Any]:
        return {**super().config(), "finetune": self.finetune}

    @classmethod
    def load_assets(cls, folder: Path) -> dict[str, Any]:
        """A randomly initialised ``T5EncoderModel`` and the tokenizer saved in ``folder``."""
        folder = check_model_folder(folder, "T5", ("t5",))
        encoder = T5EncoderModel(T5Config.from_pretrained(folder, local_files_only=True))
        return {"encoder": encoder, "tokenizer": load_tokenizer(folder, "T5")}

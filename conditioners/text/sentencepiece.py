"""A small trainable text encoder over a SentencePiece vocabulary, and a helper to train that vocabulary.

For data sets whose captions are short and domain specific (sound effects, synthetic tones), a few-layer
transformer trained with the LM is a cheap alternative to a frozen T5. The SentencePiece model is an
asset of the checkpoint (``spm.model``); the encoder weights live in ``model.safetensors``.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any, Literal

import sentencepiece as spm
import torch
from torch import nn

from conditioners.base import Condition, Conditioner, pad_id_rows

#: file name of the SentencePiece model inside a conditioner asset directory
SPM_FILENAME = "spm.model"


def train_sentencepiece(
    captions: list[str],
    directory: str | Path,
    vocab_size: int = 256,
    *,
    model_type: Literal["unigram", "bpe"] = "unigram",
    filename: str = SPM_FILENAME,
) -> Path:
    """Train a SentencePiece model in-process on ``captions`` and write it to ``directory / filename``.

    Ids follow the T5 convention (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, no ``<s>``), so the same model can
    back a Hugging Face ``T5Tokenizer``. Training is single-threaded, hence deterministic.

    Raises:
        ValueError: no usable captions, or too few of them for ``vocab_size`` (the message gives the
            largest vocabulary the text supports).

    Example:
        >>> path = train_sentencepiece(["a dog barks", "rain on a roof"] * 50, "/tmp/spm", vocab_size=40)
        ... # doctest: +SKIP
    """
    texts = [c.strip() for c in captions if isinstance(c, str) and c.strip()]
    if not texts:
        raise ValueError("train_sentencepiece needs at least one non-empty caption")
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=writer,
            vocab_size=int(vocab_size),
            model_type=model_type,
            character_coverage=1.0,
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as err:
        limit = re.search(r"value <= (\d+)", str(err))
        if limit:
            raise ValueError(
                f"{len(texts)} captions are too few for vocab_size={vocab_size}: their text supports at most "
                f"{limit.group(1)} pieces; lower vocab_size or give more captions"
            ) from err
        raise ValueError(f"SentencePiece training failed (vocab_size={vocab_size}): {err}") from err
    path = Path(directory) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(writer.getvalue())
    return path


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Fixed sine / cosine position table ``[length, dim]`` (Vaswani et al.)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # [L, 1]
    freqs = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # [dim/2]
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freqs)
    table[:, 1::2] = torch.cos(position * freqs[: dim // 2])
    return table


class SentencePieceConditioner(Conditioner):
    """Trainable text encoder: SentencePiece tokens -> embeddings + positions -> pre-norm transformer.

    Args:
        attribute: the attribute this conditioner reads.
        output_dim: feature size of the returned embeddings.
        spm_path: SentencePiece ``.model`` file (or give its bytes as ``spm_model``).
        spm_model: serialized SentencePiece model.
        dim, num_layers, num_heads, ff_mult: transformer width, depth, heads, feed-forward expansion.
        max_length: longest token sequence kept (longer text is truncated).
        dropout: dropout on the embeddings and inside the transformer layers.
        positions: ``"learned"`` or ``"sinusoidal"`` position embeddings.

    Example:
        >>> cond = SentencePieceConditioner("description", 128, "spm.model", dim=64, num_layers=2)
        ... # doctest: +SKIP
        >>> cond.encode(["jazz piano with soft drums", None]).mask  # doctest: +SKIP
    """

    kind = "sentencepiece"
    value_types = (str,)

    def __init__(
        self,
        attribute: str = "description",
        output_dim: int = 256,
        spm_path: str | Path | None = None,
        *,
        spm_model: bytes | None = None,
        dim: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        ff_mult: int = 4,
        max_length: int = 128,
        dropout: float = 0.1,
        positions: Literal["learned", "sinusoidal"] = "learned",
    ) -> None:
        super().__init__(attribute, output_dim)
        if spm_model is None:
            if spm_path is None:
                raise ValueError("SentencePieceConditioner needs spm_path or spm_model")
            if not Path(spm_path).is_file():
                raise FileNotFoundError(f"SentencePiece model {str(spm_path)!r} not found")
            spm_model = Path(spm_path).read_bytes()
        try:
            self.sp = spm.SentencePieceProcessor(model_proto=spm_model)
        except (RuntimeError, OSError, TypeError) as err:
            raise ValueError(f"not a valid SentencePiece model ({spm_path or 'bytes'}): {err}") from err
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        if positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {positions!r}")
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        self._spm_bytes = bytes(spm_model)
        self.pad_id = max(self.sp.pad_id(), 0)
        self.unk_id = self.sp.unk_id()
        self.dim, self.num_layers, self.num_heads, self.ff_mult = dim, num_layers, num_heads, ff_mult
        self.max_length, self.dropout_p, self.positions = max_length, float(dropout), positions

        self.token_embedding = nn.Embedding(self.vocab_size, dim)
        if positions == "learned":
            self.position_embedding = nn.Parameter(torch.randn(max_length, dim))  # [L, dim]
        else:
            table = sinusoidal_positions(max_length, dim)  # [L, dim]
            self.register_buffer("position_embedding", table, persistent=False)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            dim, num_heads, ff_mult * dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.output_proj = nn.Linear(dim, output_dim)

    @property
    def vocab_size(self) -> int:
        """Number of SentencePiece pieces (rows of the token embedding)."""
        return int(self.sp.get_piece_size())

    def prepare(self, values: list[str | None]) -> dict[str, torch.Tensor]:
        """Tokenise on CPU: ``tokens`` ``[B, S]`` long, padded to the longest, and ``mask`` ``[B, S]``."""
        if not values:
            raise ValueError(f"attribute {self.attribute!r}: prepare needs at least one value")
        for value in values:
            self.validate(value)
        rows = [[] if v is None else (self.sp.encode(v)[: self.max_length] or [self.unk_id]) for v in values]
        tokens, mask = pad_id_rows(rows, self.pad_id)  # [B, S], [B, S]
        return {"tokens": tokens, "mask": mask}

    def forward(self, inputs: dict[str, torch.Tensor]) -> Condition:
        """Embed prepared tokens: embeds ``[B, S, output_dim]`` (zero where masked), mask ``[B, S]``."""
        tokens = inputs["tokens"].to(self.device)  # [B, S]
        mask = inputs["mask"].to(self.device)  # [B, S] bool
        length = tokens.shape[1]
        x = self.token_embedding(tokens) + self.position_embedding[:length]  # [B, S, dim]
        x = self.dropout(x)
        # True = ignored key. A null row would be fully masked (NaN in softmax): let it see its first slot,
        # its output is zeroed below anyway.
        key_padding = ~mask  # [B, S]
        key_padding[:, 0] &= mask.any(dim=1)
        x = self.encoder(x, src_key_padding_mask=key_padding)  # [B, S, dim]
        embeds = self.output_proj(self.norm(x))  # [B, S, D]
        embeds = embeds * mask.unsqueeze(-1).to(embeds.dtype)
        return Condition(embeds, mask)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (the SentencePiece model itself is an asset)."""
        return {
            "attribute": self.attribute,
            "output_dim": self.output_dim,
            "dim": self.dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "ff_mult": self.ff_mult,
            "max_length": self.max_length,
            "dropout": self.dropout_p,
            "positions": self.positions,
        }

    def save_assets(self, directory: Path) -> None:
        """Write the SentencePiece model to ``directory / "spm.model"``."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / SPM_FILENAME).write_bytes(self._spm_bytes)

    @classmethod
    def from_config(cls, config: dict[str, Any], asset_dir: Path | None = None) -> SentencePieceConditioner:
        """Rebuild from :meth:`config` and ``asset_dir / "spm.model"`` (else ``spm_path`` in the config)."""
        config = dict(config)
        if asset_dir is None:
            return cls(**config)
        config.pop("spm_path", None)
        config.pop("spm_model", None)
        return cls(spm_path=Path(asset_dir) / SPM_FILENAME, **config)

"""The token language model: K summed codebook embeddings -> decoder blocks -> K output heads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from tokenlm.common.attention import ATTENTION_BACKENDS, check_attention_backend, key_padding_bias
from tokenlm.common.positions import rope_tables, sinusoidal_embedding
from tokenlm.lm.transformer import DecoderBlock, KVCache, RopeState

POSITIONAL = ("sin", "rope", "none")


@dataclass
class LMConfig:
    """Architecture of :class:`LMModel` (stored in a checkpoint's ``config.json`` under ``"lm"``)."""

    num_codebooks: int = 4
    cardinality: int = 2048
    dim: int = 512
    num_layers: int = 8
    num_heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.0
    bias_attn: bool = False
    bias_ffn: bool = False
    activation: str = "gelu"
    positional: str = "sin"  # "sin" (MusicGen), "rope", "none"
    max_period: float = 10000.0
    rope_interleaved: bool = False
    norm_eps: float = 1e-5
    cross_attention: bool = True
    cross_attention_mask: bool = True  # honour the condition's key-padding mask
    attention_backend: str = "sdpa"
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("num_codebooks", "cardinality", "dim", "num_layers", "num_heads", "ffn_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"LMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise ValueError(f"LMConfig.dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        if self.positional not in POSITIONAL:
            raise ValueError(f"LMConfig.positional {self.positional!r} unknown; choose one of {POSITIONAL}")
        if self.attention_backend not in ATTENTION_BACKENDS:
            raise ValueError(
                f"unknown attention backend {self.attention_backend!r}; choose one of {ATTENTION_BACKENDS}"
            )

    @property
    def special_token(self) -> int:
        """Id of the special (start / padding) token: one past the last code."""
        return self.cardinality

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LMConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown LM config keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)


class CrossContext:
    """Cross-attention keys/values of a condition for every layer, computed once per generation call."""

    def __init__(self, kv: list[tuple[torch.Tensor, torch.Tensor]], mask: torch.Tensor | None) -> None:
        self.kv = kv  # per layer: ([B, H, S, Dh], [B, H, S, Dh])
        self.mask = mask  # [B, 1, 1, S] bool or None


class LMModel(nn.Module):
    """Multi-stream transformer LM over codebook-pattern sequences ``[B, K, S]``."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        check_attention_backend(config.attention_backend)
        self.config = config
        K, card, dim = config.num_codebooks, config.cardinality, config.dim
        self.embeddings = nn.Parameter(torch.empty(K, card + 1, dim))  # [K, card + 1, D]
        self.register_buffer("embedding_offsets", torch.arange(K) * (card + 1), persistent=False)  # [K]
        self.blocks = nn.ModuleList(
            DecoderBlock(
                dim,
                config.num_heads,
                config.ffn_dim,
                cross_attention=config.cross_attention,
                bias_attn=config.bias_attn,
                bias_ffn=config.bias_ffn,
                activation=config.activation,
                dropout=config.dropout,
                norm_eps=config.norm_eps,
                backend=config.attention_backend,
            )
            for _ in range(config.num_layers)
        )
        self.out_norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self.heads = nn.Parameter(torch.empty(K, card, dim))  # [K, card, D]
        self._position_table = torch.empty(0)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.init_std
        nn.init.normal_(self.embeddings, std=std)
        nn.init.normal_(self.heads, std=std)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def head_dim(self) -> int:
        return self.config.dim // self.config.num_heads

    def new_cache(self, batch: int, capacity: int, device: torch.device, dtype: torch.dtype) -> KVCache:
        """A pre-allocated self-attention cache for ``batch`` sequences of up to ``capacity`` steps."""
        cfg = self.config
        return KVCache(cfg.num_layers, batch, cfg.num_heads, capacity, self.head_dim, device, dtype)

    def cross_context(self, embeds: torch.Tensor | None, mask: torch.Tensor | None) -> CrossContext | None:
        """Project the condition ``[B, S, D]`` (mask ``[B, S]``) to per-layer keys/values."""
        if embeds is None or not self.config.cross_attention:
            return None
        if self.config.attention_backend != "sdpa":
            check_attention_backend(self.config.attention_backend, embeds.device)
        kv = [block.cross_attn.project_condition(embeds) for block in self.blocks]
        attn_mask = key_padding_bias(mask) if self.config.cross_attention_mask else None
        return CrossContext(kv, attn_mask)

    def embed(self, sequence: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, T]`` (special token allowed) -> summed embeddings ``[B, T, D]``."""
        flat = sequence + self.embedding_offsets[None, :, None]  # [B, K, T]
        table = self.embeddings.view(-1, self.config.dim)
        return nn.functional.embedding(flat, table).sum(dim=1)

    def _positions(self, start: int, steps: int, device: torch.device) -> torch.Tensor:
        end = start + steps
        if self._position_table.shape[0] < end or self._position_table.device != device:
            size = max(end, 2 * self._position_table.shape[0], 1024)
            positions = torch.arange(size, device=device)
            self._position_table = sinusoidal_embedding(positions, self.config.dim, self.config.max_period)
        return self._position_table[start:end]

    def _rope(self, start: int, steps: int, device: torch.device) -> RopeState:
        positions = torch.arange(start, start + steps, device=device)
        cos, sin = rope_tables(positions, self.head_dim, self.config.max_period)
        return RopeState(cos, sin, self.config.rope_interleaved)

    def forward(
        self,
        sequence: torch.Tensor,
        condition: CrossContext | None = None,
        cache: KVCache | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits for the next step at every position.

        Args:
            sequence: ``[B, K, T]`` pattern-sequence tokens (special token = ``cardinality``).
            condition: cross-attention context from :meth:`cross_context`.
            cache: continue after ``cache.length`` cached steps and append these ``T`` steps.
        Returns:
            logits ``[B, K, T, card]`` (and the final hidden states ``[B, T, D]`` if ``return_hidden``).
        """
        batch, _, steps = sequence.shape
        start = cache.length if cache is not None else 0
        if cache is not None and start + steps > cache.capacity:
            raise ValueError(f"KV cache holds {cache.capacity} steps; cannot append {steps} after {start}")
        x = self.embed(sequence)  # [B, T, D]
        rope = None
        if self.config.positional == "sin":
            x = x + self._positions(start, steps, x.device).to(x.dtype)
        elif self.config.positional == "rope":
            rope = self._rope(start, steps, x.device)
        if self.config.cross_attention and condition is None:
            raise ValueError("this LM cross-attends to a condition; pass one (use a null condition for none)")
        cross_kv, cross_mask = (None, None) if condition is None else (condition.kv, condition.mask)
        for layer, block in enumerate(self.blocks):
            x = block(x, layer, cache, rope, None if cross_kv is None else cross_kv[layer], cross_mask)
        if cache is not None:
            cache.length = start + steps
        hidden = self.out_norm(x)  # [B, T, D]
        K, card = self.config.num_codebooks, self.config.cardinality
        logits = nn.functional.linear(hidden, self.heads.view(K * card, -1))  # [B, T, K * card]
        logits = logits.view(batch, steps, K, card).transpose(1, 2)  # [B, K, T, card]
        return (logits, hidden) if return_hidden else logits

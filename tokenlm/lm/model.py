"""The token language model: K summed codebook embeddings -> decoder blocks -> K output heads."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from conditioners.base import Condition
from conditioners.fuser import FusedCondition
from tokenlm.common.attention import ATTENTION_BACKENDS, check_attention_backend, key_padding_bias
from tokenlm.common.config import config_from_dict
from tokenlm.common.onednn_linear import linear
from tokenlm.common.packed_linear import PackableLinear, PackingMixin, packed_linear, wants_grad
from tokenlm.common.positions import rope_tables, sinusoidal_embedding
from tokenlm.lm.head_loss import fused_head_applies, fused_head_cross_entropy
from tokenlm.lm.losses import codebook_cross_entropy
from tokenlm.lm.transformer import DecoderBlock, KVCache, RopeState

#: position encodings: added sinusoids (MusicGen), rotary (RoPE), both (audiocraft ``sin_rope``), none
POSITIONAL = ("sin", "rope", "sin_rope", "none")
#: where prepended condition tokens sit: ``before`` audio position 0 (positions -P .. -1, tokenlm's layout), or
#: ``shared``, counted from the first prepended token so audio starts at P (MusicGen-Melody, audiocraft's prepend)
PREFIX_POSITIONS = ("before", "shared")
#: padding among prepended tokens: ``masked`` (moved first, never attended) or ``attended`` (left in place as zero
#: vectors and attended to like any token, as MusicGen-Melody and audiocraft's prepend fuser do)
PREFIX_PADDING = ("masked", "attended")


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
    bias_heads: bool = False  # output heads with a bias (audiocraft ``bias_proj``)
    activation: str = "gelu"
    positional: str = "sin"  # "sin" (MusicGen), "rope", "sin_rope", "none"
    max_period: float = 10000.0
    rope_interleaved: bool = False
    norm_eps: float = 1e-5
    cross_attention: bool = True
    cross_attention_mask: bool = True  # honour the condition's key-padding mask
    attention_backend: str = "sdpa"
    init_std: float = 0.02
    prefix_positions: str = "before"  # see PREFIX_POSITIONS
    prefix_padding: str = "masked"  # see PREFIX_PADDING

    def __post_init__(self) -> None:
        for name in ("num_codebooks", "cardinality", "dim", "num_layers", "num_heads", "ffn_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"LMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise ValueError(f"LMConfig.dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        if self.positional not in POSITIONAL:
            raise ValueError(f"LMConfig.positional {self.positional!r} unknown; choose one of {POSITIONAL}")
        if self.prefix_positions not in PREFIX_POSITIONS:
            raise ValueError(
                f"LMConfig.prefix_positions {self.prefix_positions!r} unknown; choose one of {PREFIX_POSITIONS}"
            )
        if self.prefix_padding not in PREFIX_PADDING:
            raise ValueError(f"LMConfig.prefix_padding {self.prefix_padding!r} unknown; choose one of {PREFIX_PADDING}")
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
        return config_from_dict(cls, values, "LM config")


class ConditionContext:
    """What the LM reads from a condition, prepared once per generation call (or training step).

    Attributes:
        kv: per layer, cross-attention keys and values ``([B, H, S, Dh], [B, H, S, Dh])``, or None.
        mask: cross-attention mask ``[B, 1, 1, S]`` bool, or None (nothing masked).
        prefix: ``[B, P, D]`` condition tokens placed before the audio sequence (valid ones right-aligned,
            so the last valid token sits just before the audio), or None.
        prefix_mask: ``[B, P]`` bool validity of the prefix, or None when every prefix token is valid.
        offset: ``[B, D]`` summed condition added to every input embedding, or None.
    """

    def __init__(
        self,
        kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        mask: torch.Tensor | None = None,
        prefix: torch.Tensor | None = None,
        prefix_mask: torch.Tensor | None = None,
        offset: torch.Tensor | None = None,
    ) -> None:
        self.kv, self.mask = kv, mask
        self.prefix, self.prefix_mask, self.offset = prefix, prefix_mask, offset

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix is None else int(self.prefix.shape[1])


#: the name of :class:`ConditionContext` when it only held cross-attention keys and values
CrossContext = ConditionContext


def right_align(condition: Condition) -> Condition:
    """Move each row's valid positions to the end of the sequence (order kept): ``[B, P, D]`` -> ``[B, P, D]``.

    Prepended tokens then sit at the same positions whatever the batch's padding.
    """
    order = torch.argsort(condition.mask.int(), dim=1, stable=True)  # invalid first, then valid, in order
    embeds = condition.embeds.gather(1, order[..., None].expand_as(condition.embeds))
    return Condition(embeds, condition.mask.gather(1, order))


class LMModel(PackingMixin, nn.Module):
    """Multi-stream transformer LM over codebook-pattern sequences ``[B, K, S]``.

    For CPU inference its step weights can be held prepacked for oneDNN (:meth:`pack_weights`, done by
    :func:`~tokenlm.lm.generate.generate_codes`), in place of the plain ones; see
    :mod:`tokenlm.common.packed_linear`.
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        check_attention_backend(config.attention_backend)
        self.config = config
        self._init_packing()
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
        self.head_bias = nn.Parameter(torch.zeros(K, card)) if config.bias_heads else None  # [K, card]
        self._position_table = torch.empty(0)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.init_std
        nn.init.normal_(self.embeddings, std=std)
        nn.init.normal_(self.heads, std=std)
        if self.head_bias is not None:
            nn.init.zeros_(self.head_bias)
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

    def cross_context(self, embeds: torch.Tensor | None, mask: torch.Tensor | None) -> ConditionContext | None:
        """Project the condition ``[B, S, D]`` (mask ``[B, S]``) to per-layer keys/values."""
        if embeds is None or not self.config.cross_attention:
            return None
        if self.config.attention_backend != "sdpa":
            check_attention_backend(self.config.attention_backend, embeds.device)
        kv = [block.cross_attn.project_condition(embeds) for block in self.blocks]
        attn_mask = key_padding_bias(mask) if self.config.cross_attention_mask else None
        return ConditionContext(kv, attn_mask)

    def condition_context(self, condition: FusedCondition | Condition | None) -> ConditionContext | None:
        """Everything the LM reads from a fused condition: cross keys/values, prepended tokens, summed offset.

        A plain :class:`Condition` is a cross-attention condition.
        """
        if condition is None:
            return None
        if isinstance(condition, Condition):
            condition = FusedCondition(cross=condition)
        if condition.cross is not None and not self.config.cross_attention:
            raise ValueError("this LM has no cross-attention (cross_attention=False) but got a cross condition")
        context = ConditionContext()
        if condition.cross is not None:
            context = self.cross_context(condition.cross.embeds, condition.cross.mask)
        if condition.prepend is not None and self.config.prefix_padding == "attended":
            mask = condition.prepend.mask[..., None].to(condition.prepend.embeds.dtype)  # [B, P, 1]
            context.prefix = condition.prepend.embeds * mask  # [B, P, D]: padding as zero vectors, in place
        elif condition.prepend is not None:
            prefix = right_align(condition.prepend)
            context.prefix = prefix.embeds  # [B, P, D]
            context.prefix_mask = None if bool(prefix.mask.all()) else prefix.mask  # [B, P]
        if condition.sum is not None:
            context.offset = condition.sum.embeds[:, 0]  # [B, D]
        return context

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

    def _audio_origin(self, prefix: int) -> int:
        """How many positions before the first audio step hold no position (the prepended tokens under
        ``prefix_positions="before"``): a sequence position minus this is its position encoding."""
        return prefix if self.config.prefix_positions == "before" else 0

    def _rope(self, start: int, steps: int, device: torch.device) -> RopeState:
        positions = torch.arange(start, start + steps, device=device)
        cos, sin = rope_tables(positions, self.head_dim, self.config.max_period)
        return RopeState(cos, sin, self.config.rope_interleaved)

    def _self_mask(
        self, prefix_mask: torch.Tensor | None, prefix: int, past: int, steps: int
    ) -> torch.Tensor | None:
        """Self-attention mask ``[B, 1, steps, past + steps]`` when prefix tokens are masked (else None: causal).

        A query sees earlier keys, except masked prefix tokens; every query sees itself, so no row is empty.
        """
        if prefix_mask is None:
            return None
        total = past + steps
        query = torch.arange(past, total, device=prefix_mask.device)[:, None]  # [steps, 1]
        key = torch.arange(total, device=prefix_mask.device)[None]  # [1, total]
        key_ok = torch.ones(prefix_mask.shape[0], total, dtype=torch.bool, device=prefix_mask.device)
        key_ok[:, :prefix] = prefix_mask
        mask = (key <= query)[None] & (key_ok[:, None, :] | (key == query)[None])  # [B, steps, total]
        return mask[:, None]

    def _flat_head_bias(self) -> torch.Tensor | None:
        return None if self.head_bias is None else self.head_bias.view(-1)  # [K * card]

    def packable_layers(self) -> list[PackableLinear]:
        return [layer for block in self.blocks for layer in block.packable_layers()]

    def packable_parameters(self) -> dict[str, nn.Parameter]:
        return {"heads": self.heads}

    def _head_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[..., D]`` -> logits ``[..., K * card]`` of all the heads in one product."""
        packed = self.packed_parameter("heads")
        if packed is not None:
            if not wants_grad(hidden, self.heads):
                return packed_linear(hidden, packed, self._flat_head_bias())
            self.unpack_weights()
        K, card = self.config.num_codebooks, self.config.cardinality
        return linear(hidden, self.heads.view(K * card, -1), self._flat_head_bias())  # oneDNN when training on CPU

    def decode_step(self, tokens: torch.Tensor, condition: ConditionContext | None, cache: KVCache) -> torch.Tensor:
        """Logits ``[N, K, card]`` for the step after ``tokens`` ``[N, K]``, appended to a filled ``cache``.

        Equivalent to ``forward(tokens[..., None], condition, cache)[:, :, 0]`` once the cache holds at least
        the first step (and any prepended condition tokens), through the lean per-row path of the blocks.
        """
        if cache.length == 0:
            raise ValueError("decode_step continues a cache: run forward on the first step(s) first")
        rows, position = tokens.shape[0], cache.length - self._audio_origin(cache.prefix)  # this step's position
        x = nn.functional.embedding(tokens + self.embedding_offsets, self.embeddings.view(-1, self.config.dim))
        x = x.sum(dim=1)  # [N, D]
        if condition is not None and condition.offset is not None:
            x = x + condition.offset.to(x.dtype)
        rope = None
        if self.config.positional in ("sin", "sin_rope"):
            x = x + self._positions(position, 1, x.device)[0].to(x.dtype)
        if self.config.positional in ("rope", "sin_rope"):
            rope = self._rope(position, 1, x.device)
        prefix_mask = condition.prefix_mask if condition is not None else None
        self_mask = self._self_mask(prefix_mask, cache.prefix, cache.length, 1)
        cross_kv, cross_mask = (None, None) if condition is None else (condition.kv, condition.mask)
        for layer, block in enumerate(self.blocks):
            kv = None if cross_kv is None else cross_kv[layer]
            x = block.decode_step(x, layer, cache, rope, kv, cross_mask, self_mask)
        cache.length += 1
        norm = self.out_norm
        hidden = nn.functional.layer_norm(x, (self.config.dim,), norm.weight, norm.bias, norm.eps)  # [N, D]
        return self._head_logits(hidden).view(rows, self.config.num_codebooks, self.config.cardinality)

    def forward(
        self,
        sequence: torch.Tensor,
        condition: ConditionContext | None = None,
        cache: KVCache | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits for the next step at every position.

        Prepended condition tokens (``condition.prefix``) go before the sequence on the first call only (with
        a cache they stay there); they take positions ``-P .. -1`` so audio positions start at 0 whatever P
        is (``prefix_positions="shared"``: ``0 .. P - 1``, audio from P), and their outputs are stripped. A
        summed condition (``condition.offset``) is added to every input embedding.

        Args:
            sequence: ``[B, K, T]`` pattern-sequence tokens (special token = ``cardinality``).
            condition: the context from :meth:`condition_context` (or :meth:`cross_context`).
            cache: continue after ``cache.length`` cached positions and append these ``T`` steps.
        Returns:
            logits ``[B, K, T, card]`` (and the final hidden states ``[B, T, D]`` if ``return_hidden``).
        """
        hidden = self.hidden_states(sequence, condition, cache)  # [B, T, D]
        logits = self.logits(hidden)
        return (logits, hidden) if return_hidden else logits

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final hidden states ``[B, T, D]`` -> logits ``[B, K, T, card]`` (a view of ``[B, T, K, card]``)."""
        batch, steps, _ = hidden.shape
        K, card = self.config.num_codebooks, self.config.cardinality
        return self._head_logits(hidden).view(batch, steps, K, card).transpose(1, 2)

    def cross_entropy(
        self, hidden: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``codebook_cross_entropy(self.logits(hidden), targets, valid)``: the loss and per-codebook losses ``[K]``.

        On CPU at float32 the heads and the loss run fused over row chunks without materialising the logits
        (:func:`~tokenlm.lm.head_loss.fused_head_cross_entropy`); elsewhere through the logits.
        """
        if self.packed_parameter("heads") is None and fused_head_applies(hidden, self.heads):
            return fused_head_cross_entropy(hidden, self.heads, self.head_bias, targets, valid)
        loss, per_codebook = codebook_cross_entropy(self.logits(hidden), targets, valid)
        return loss, per_codebook.detach()

    def hidden_states(
        self, sequence: torch.Tensor, condition: ConditionContext | None = None, cache: KVCache | None = None
    ) -> torch.Tensor:
        """The final (normalised) hidden states ``[B, T, D]`` of :meth:`forward`, before the heads."""
        steps = sequence.shape[2]
        past = cache.length if cache is not None else 0
        prefix = condition.prefix if condition is not None and past == 0 else None
        num_prefix = 0 if prefix is None else prefix.shape[1]
        if cache is not None:
            if past == 0:
                cache.prefix = num_prefix
            if past + num_prefix + steps > cache.capacity:
                raise ValueError(
                    f"KV cache holds {cache.capacity} steps; cannot append {num_prefix + steps} after {past}"
                )
        total_prefix = cache.prefix if cache is not None else num_prefix
        shift = 0 if self.config.prefix_positions == "before" else total_prefix  # position of audio step 0
        start = (past - cache.prefix if past > 0 else 0) + shift  # position of the first audio step
        if self.config.cross_attention and (condition is None or condition.kv is None):
            raise ValueError("this LM cross-attends to a condition; pass one (use a null condition for none)")
        x = self.embed(sequence)  # [B, T, D]
        if condition is not None and condition.offset is not None:
            x = x + condition.offset[:, None].to(x.dtype)  # summed condition on every input
        rope = None
        if self.config.positional in ("sin", "sin_rope"):
            x = x + self._positions(start, steps, x.device).to(x.dtype)
            if prefix is not None:
                positions = torch.arange(shift - num_prefix, shift, device=x.device)
                table = sinusoidal_embedding(positions, self.config.dim, self.config.max_period)
                prefix = prefix.to(x.dtype) + table.to(x.dtype)  # [B, P, D]
        if self.config.positional in ("rope", "sin_rope"):
            rope = self._rope(start - num_prefix, num_prefix + steps, x.device)
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], dim=1)  # [B, P + T, D]
        prefix_mask = condition.prefix_mask if condition is not None else None
        self_mask = self._self_mask(prefix_mask, total_prefix, past, x.shape[1])
        cross_kv, cross_mask = (None, None) if condition is None else (condition.kv, condition.mask)
        for layer, block in enumerate(self.blocks):
            kv = None if cross_kv is None else cross_kv[layer]
            x = block(x, layer, cache, rope, kv, cross_mask, self_mask)
        if cache is not None:
            cache.length = past + x.shape[1]
        return self.out_norm(x[:, num_prefix:])  # [B, T, D]: prefix outputs stripped

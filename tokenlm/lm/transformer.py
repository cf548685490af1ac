"""Pre-norm transformer decoder blocks with causal self-attention, cross-attention and a KV cache.

One block: ``x += SelfAttn(LN(x))``; ``x += CrossAttn(LN(x), condition)``; ``x += FFN(LN(x))`` — the layout of
MusicGen (audiocraft and transformers alike), so their weights map one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tokenlm.common.attention import attention
from tokenlm.common.packed_linear import PackableLinear
from tokenlm.common.positions import apply_rope

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}


class KVCache:
    """Pre-allocated self-attention keys and values for all layers.

    ``keys[l]`` and ``values[l]`` are ``[B, H, capacity, Dh]``; :attr:`length` steps are filled.
    """

    def __init__(
        self,
        num_layers: int,
        batch: int,
        num_heads: int,
        capacity: int,
        head_dim: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        shape = (num_layers, batch, num_heads, capacity, head_dim)
        self.keys = torch.empty(shape, device=device, dtype=dtype)
        self.values = torch.empty(shape, device=device, dtype=dtype)
        self.layer_keys = [self.keys[i] for i in range(num_layers)]  # per-layer views [B, H, capacity, Dh]
        self.layer_values = [self.values[i] for i in range(num_layers)]
        self.capacity = capacity
        self.length = 0  # filled positions, prepended condition tokens included
        self.prefix = 0  # how many of them are prepended condition tokens (set by the first forward)

    def nbytes(self) -> int:
        return self.keys.nelement() * self.keys.element_size() * 2


class RopeState:
    """Rotary tables for the positions of the current forward call (``[T, Dh // 2]`` each)."""

    def __init__(self, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool) -> None:
        self.cos, self.sin, self.interleaved = cos, sin, interleaved


class SelfAttention(nn.Module):
    """Causal multi-head self-attention with a fused QKV projection."""

    def __init__(self, dim: int, num_heads: int, bias: bool, dropout: float, backend: str) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = PackableLinear(dim, 3 * dim, bias=bias)
        self.out = PackableLinear(dim, dim, bias=bias)
        self.dropout, self.backend = dropout, backend

    def forward(
        self,
        x: torch.Tensor,
        layer: int,
        cache: KVCache | None,
        rope: RopeState | None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``attn_mask`` ``[B, 1, T, T_keys]`` (True = attend) replaces the default causal mask when given."""
        batch, steps, dim = x.shape
        qkv = self.qkv(x).view(batch, steps, 3, self.num_heads, self.head_dim)
        q, k = self.rotate(*qkv.permute(2, 0, 3, 1, 4)[:2], rope)  # each [B, H, T, Dh]
        v = qkv[:, :, 2].transpose(1, 2)
        mask, is_causal = None, steps > 1
        if cache is not None:
            start = cache.length
            k, v = self.append_to_cache(k, v, layer, cache)
            if start > 0 and steps > 1:  # a chunk after cached steps: causal mask aligned bottom-right
                mask = torch.ones(steps, start + steps, dtype=torch.bool, device=x.device).tril(start)
                is_causal = False
        if attn_mask is not None:
            mask, is_causal = attn_mask, False
        dropout = self.dropout if self.training else 0.0
        y = attention(q, k, v, mask=mask, is_causal=is_causal, dropout_p=dropout, backend=self.backend)
        return self.out(y.transpose(1, 2).reshape(batch, steps, dim))

    @staticmethod
    def rotate(q: torch.Tensor, k: torch.Tensor, rope: RopeState | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply rotary embeddings to queries and keys ``[B, H, T, Dh]`` (identity without RoPE)."""
        if rope is None:
            return q, k
        return apply_rope(q, rope.cos, rope.sin, rope.interleaved), apply_rope(k, rope.cos, rope.sin, rope.interleaved)

    @staticmethod
    def append_to_cache(
        k: torch.Tensor, v: torch.Tensor, layer: int, cache: KVCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``T`` new keys/values ``[B, H, T, Dh]`` after the cached ones; return all of them so far."""
        start, end = cache.length, cache.length + k.shape[2]
        keys, values = cache.layer_keys[layer], cache.layer_values[layer]
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        return keys[:, :, :end], values[:, :, :end]


class CrossAttention(nn.Module):
    """Multi-head attention from the sequence to the condition; keys and values can be computed once."""

    def __init__(self, dim: int, num_heads: int, bias: bool, dropout: float, backend: str) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q = PackableLinear(dim, dim, bias=bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=bias)  # applied to the condition once per call: never packed
        self.out = PackableLinear(dim, dim, bias=bias)
        self.dropout, self.backend = dropout, backend

    def project_condition(self, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition ``[B, S, D]`` -> keys and values ``[B, H, S, Dh]``."""
        batch, length, _ = condition.shape
        kv = self.kv(condition).view(batch, length, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4)
        return k, v

    def forward(
        self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None
    ) -> torch.Tensor:
        batch, steps, dim = x.shape
        q = self.q(x).view(batch, steps, self.num_heads, self.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        dropout = self.dropout if self.training else 0.0
        y = attention(q, kv[0], kv[1], mask=mask, dropout_p=dropout, backend=self.backend)
        return self.out(y.transpose(1, 2).reshape(batch, steps, dim))


class DecoderBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, feed-forward."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        *,
        cross_attention: bool,
        bias_attn: bool,
        bias_ffn: bool,
        activation: str,
        dropout: float,
        norm_eps: float,
        backend: str,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.norm_self = nn.LayerNorm(dim, eps=norm_eps)
        self.self_attn = SelfAttention(dim, num_heads, bias_attn, dropout, backend)
        self.norm_cross = nn.LayerNorm(dim, eps=norm_eps) if cross_attention else None
        self.cross_attn = CrossAttention(dim, num_heads, bias_attn, dropout, backend) if cross_attention else None
        self.norm_ffn = nn.LayerNorm(dim, eps=norm_eps)
        self.fc1 = PackableLinear(dim, ffn_dim, bias=bias_ffn)
        self.fc2 = PackableLinear(ffn_dim, dim, bias=bias_ffn)
        self.activation = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        layer: int,
        cache: KVCache | None,
        rope: RopeState | None,
        cross_kv: tuple[torch.Tensor, torch.Tensor] | None,
        cross_mask: torch.Tensor | None,
        self_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        drop = self.dropout if self.training and self.dropout.p > 0 else _identity  # no module call at inference
        x = x + drop(self.self_attn(self.norm_self(x), layer, cache, rope, self_mask))
        if self.cross_attn is not None and cross_kv is not None:
            x = x + drop(self.cross_attn(self.norm_cross(x), cross_kv, cross_mask))
        return x + drop(self.fc2(drop(self.activation(self.fc1(self.norm_ffn(x))))))


    def packable_layers(self) -> list[PackableLinear]:
        """The weights a decode step multiplies by (all but the cross-attention keys / values)."""
        layers = [self.self_attn.qkv, self.self_attn.out, self.fc1, self.fc2]
        if self.cross_attn is not None:
            layers += [self.cross_attn.q, self.cross_attn.out]
        return layers

    def decode_step(
        self,
        x: torch.Tensor,
        layer: int,
        cache: KVCache,
        rope: RopeState | None,
        cross_kv: tuple[torch.Tensor, torch.Tensor] | None,
        cross_mask: torch.Tensor | None,
        self_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """One new position per sequence, ``x`` ``[N, D]``, at inference: the same maths as :meth:`forward`
        with ``T = 1``, written with functional calls on ``[N, D]`` rows so a generation step pays for
        few operator dispatches (the step loop is dominated by them at small and medium sizes). The linear layers
        run through :meth:`PackableLinear.run`: prepacked weights where the model packed them."""
        attn, rows, dim = self.self_attn, x.shape[0], x.shape[1]
        heads, head_dim = attn.num_heads, attn.head_dim
        h = F.layer_norm(x, (dim,), self.norm_self.weight, self.norm_self.bias, self.norm_self.eps)
        q, k, v = attn.qkv.run(h).view(rows, 3, heads, 1, head_dim).unbind(1)
        q, k = attn.rotate(q, k, rope)  # each [N, H, 1, Dh]
        k, v = attn.append_to_cache(k, v, layer, cache)
        y = attention(q, k, v, mask=self_mask, backend=attn.backend)
        x = attn.out.run_add(y.reshape(rows, dim), x)  # x + out(y): [N, H, 1, Dh] -> [N, D]
        if self.cross_attn is not None and cross_kv is not None:
            cross, norm = self.cross_attn, self.norm_cross
            h = F.layer_norm(x, (dim,), norm.weight, norm.bias, norm.eps)
            q = cross.q.run(h).view(rows, heads, 1, head_dim)
            y = attention(q, cross_kv[0], cross_kv[1], mask=cross_mask, backend=cross.backend)
            x = cross.out.run_add(y.reshape(rows, dim), x)
        h = F.layer_norm(x, (dim,), self.norm_ffn.weight, self.norm_ffn.bias, self.norm_ffn.eps)
        h = self.fc1.run_gelu(h) if self.activation is F.gelu else self.activation(self.fc1.run(h))
        return self.fc2.run_add(h, x)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x

"""A 1-D diffusion transformer over latent frames, with EzAudio's design choices (each can be switched off).

- AdaLN-SOLA: one AdaLN projection of the timestep embedding shared by all blocks, plus a low-rank
  per-block correction (``adaln_sola=False``: a full AdaLN projection per block, as in DiT).
- U-ViT long skips: block ``L-1-i`` also reads the output of block ``i``, fused by a linear layer and a norm.
- RoPE on self-attention and QK-norm (RMS-normalised queries and keys).
- Cross-attention to the condition tokens with a zero-initialised output projection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from conditioners.base import Condition
from tokenlm.common.attention import attention, key_padding_bias
from tokenlm.common.config import config_from_dict
from tokenlm.common.positions import apply_rope, rope_tables, sinusoidal_embedding


@dataclass
class DiTConfig:
    """Architecture of :class:`DiT`.

    Attributes:
        latent_dim: D of the codec latent ``[B, D, T]``.
        dim: transformer width; cond_dim: width of the condition tokens.
        adaln_rank: rank of the per-block AdaLN-SOLA correction.
        adaln_sola, long_skip, rope, qk_norm, cross_attention: switch each EzAudio choice on or off.
        context: the DiT also reads a clean-context input (known latent frames and their mask) for
            masked-latent training and inpainting.
    """

    latent_dim: int
    dim: int = 256
    num_layers: int = 8
    num_heads: int = 8
    ffn_mult: int = 4
    cond_dim: int = 256
    adaln_rank: int = 32
    adaln_sola: bool = True
    long_skip: bool = True
    rope: bool = True
    qk_norm: bool = True
    cross_attention: bool = True
    context: bool = False
    attention_backend: str = "sdpa"

    def __post_init__(self) -> None:
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            raise ValueError(f"dim {self.dim} must split into {self.num_heads} heads of even size")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiTConfig:
        return config_from_dict(cls, data, "DiT config")


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN modulation of ``x`` ``[B, T, D]`` by ``shift``/``scale`` ``[B, D]``: ``x * (1 + scale) + shift``."""
    return torch.addcmul(shift[:, None], x, 1 + scale[:, None])  # one pass over x


class TanhGELU(nn.Module):
    """GELU with the tanh approximation (what the DiT trains with); in bf16 the exact (erf) GELU stands in.

    The two differ by at most 5e-4 (absolute), less than bf16's own rounding of any output above 0.13 in magnitude,
    while the tanh form takes about 6x longer than erf on bf16 tensors on CPU (2-core AMD EPYC: 2.9 ms against
    0.5 ms for ``[2, 500, 2048]``). Float32 keeps the tanh form exactly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="none" if x.dtype == torch.bfloat16 else "tanh")


def normalize_and_rotate(
    x: torch.Tensor, norm: nn.Module, rope: tuple[torch.Tensor, torch.Tensor] | None
) -> torch.Tensor:
    """QK-norm (``norm``: an ``nn.RMSNorm`` or ``nn.Identity``), then RoPE, of ``x`` ``[B, T, H, Dh]``, in one
    float32 pass whatever ``x``'s dtype (one up-cast and one down-cast instead of one per operation).

    An RMSNorm built without ``eps`` uses float32's machine epsilon, as it does when the DiT trains in float32
    (``nn.RMSNorm`` would take bf16's, 6e4 times larger, on bf16 inputs).
    """
    is_norm = isinstance(norm, nn.RMSNorm)
    if not is_norm and rope is None:
        return x
    out = x.float()
    if is_norm:
        eps = norm.eps if norm.eps is not None else torch.finfo(torch.float32).eps
        out = out * torch.rsqrt(out.square().mean(dim=-1, keepdim=True) + eps)
        if norm.weight is not None:
            out = out * norm.weight.float()
    if rope is not None:
        out = apply_rope(out, *rope)
    return out.to(x.dtype)


class Attention(nn.Module):
    """Multi-head attention with optional QK-norm and RoPE; keys/values from ``context`` when given."""

    def __init__(self, dim: int, num_heads: int, kv_dim: int, qk_norm: bool, backend: str) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.backend = num_heads, dim // num_heads, backend
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.q_norm = nn.RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(self.head_dim) if qk_norm else nn.Identity()

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim)  # [B, T, H, Dh]

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``x`` ``[B, T, D]``, ``context`` ``[B, S, Dc]`` (self-attention when None) -> ``[B, T, D]``."""
        # norms and rotations run on [B, T, H, Dh], where each head's features are contiguous
        kv = self.kv(x if context is None else context)  # [B, S, 2D]: keys, then values
        k, v = kv.view(kv.shape[0], kv.shape[1], 2, self.num_heads, self.head_dim).unbind(2)  # each [B, S, H, Dh]
        if rope is not None:
            rope = (rope[0][:, None], rope[1][:, None])  # [T, 1, Dh / 2]: broadcast over heads
        q = normalize_and_rotate(self._heads(self.q(x)), self.q_norm, rope)
        k = normalize_and_rotate(k, self.k_norm, rope)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, Dh]
        out = attention(q, k, v, mask=key_padding_bias(mask), backend=self.backend)  # [B, H, T, Dh]
        return self.out(out.transpose(1, 2).reshape(x.shape))


class DiTBlock(nn.Module):
    """Self-attention, cross-attention and feed-forward, modulated by the timestep (6 AdaLN vectors)."""

    def __init__(self, cfg: DiTConfig, reads_skip: bool = False) -> None:
        super().__init__()
        dim = cfg.dim
        # U-ViT long skip: this block also reads an earlier block's output, fused by a linear layer and a norm
        self.skip = nn.Linear(2 * dim, dim) if reads_skip else None
        self.skip_norm = nn.LayerNorm(dim) if reads_skip else None
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = Attention(dim, cfg.num_heads, dim, cfg.qk_norm, cfg.attention_backend)
        self.cross = None
        if cfg.cross_attention:
            self.cross_norm = nn.LayerNorm(dim)
            self.cross = Attention(dim, cfg.num_heads, cfg.cond_dim, cfg.qk_norm, cfg.attention_backend)
            nn.init.zeros_(self.cross.out.weight)  # the condition path starts as the zero vector
            nn.init.zeros_(self.cross.out.bias)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, cfg.ffn_mult * dim), TanhGELU(),
                                 nn.Linear(cfg.ffn_mult * dim, dim))
        if cfg.adaln_sola:  # low-rank correction of the shared projection
            self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(dim, cfg.adaln_rank, bias=False),
                                       nn.Linear(cfg.adaln_rank, 6 * dim, bias=False))
            nn.init.zeros_(self.adaln[2].weight)
        else:  # a full AdaLN projection of its own
            self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(
        self,
        x: torch.Tensor,
        t_emb: torch.Tensor,
        shared: torch.Tensor | None,
        condition: Condition | None,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        skip: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x`` ``[B, T, D]``, ``t_emb`` ``[B, D]``, ``shared`` ``[B, 6D]`` (SOLA) -> ``[B, T, D]``."""
        if self.skip is not None and skip is not None:
            x = self.skip_norm(self.skip(torch.cat([x, skip], dim=-1)))  # U-ViT fusion, then a norm
        mod = self.adaln(t_emb) if shared is None else shared + self.adaln(t_emb)  # [B, 6D]
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1), rope=rope)
        if self.cross is not None and condition is not None:
            x = x + self.cross(self.cross_norm(x), condition.embeds, mask=condition.mask)
        return x + gate2[:, None] * self.ffn(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """Predicts the diffusion target ``[B, D, T]`` from a noisy latent ``[B, D, T]``, timesteps ``[B]`` and a
    condition (tokens ``[B, S, cond_dim]``)."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = cfg = config
        dim = cfg.dim
        self.proj_in = nn.Linear(cfg.latent_dim, dim)
        # the clean context (known latent [D] + known mask [1]) enters through a zero-initialised projection
        self.context_in = nn.Linear(cfg.latent_dim + 1, dim) if cfg.context else None
        if self.context_in is not None:
            nn.init.zeros_(self.context_in.weight)
            nn.init.zeros_(self.context_in.bias)
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.shared_adaln = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim)) if cfg.adaln_sola else None
        self.num_skips = cfg.num_layers // 2 if cfg.long_skip else 0
        # the last num_skips blocks read the first num_skips blocks' outputs, innermost pairs first
        self.blocks = nn.ModuleList(
            DiTBlock(cfg, reads_skip=index >= cfg.num_layers - self.num_skips) for index in range(cfg.num_layers)
        )
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False)
        self.adaln_out = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.proj_out = nn.Linear(dim, cfg.latent_dim)

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        condition: Condition | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x`` ``[B, D, T]``, ``timesteps`` ``[B]`` (0..num_train_timesteps), ``context`` ``[B, D + 1, T]``
        (known latent, zero elsewhere, and the known-frame mask; None = nothing known) -> ``[B, D, T]``."""
        cfg = self.config
        h = self.proj_in(x.transpose(1, 2))  # [B, T, dim]
        if context is not None and self.context_in is None:
            raise ValueError("this DiT was built without context input (DiTConfig.context=False)")
        if self.context_in is not None and context is not None:
            h = h + self.context_in(context.transpose(1, 2).to(h.dtype))
        t_emb = self.time_mlp(sinusoidal_embedding(timesteps.float(), cfg.dim).to(h.dtype))  # [B, dim]
        shared = self.shared_adaln(t_emb) if self.shared_adaln is not None else None  # [B, 6 dim]
        rope = None
        if cfg.rope:
            rope = rope_tables(torch.arange(h.shape[1], device=h.device), cfg.dim // cfg.num_heads)
        skips: list[torch.Tensor] = []
        first_reader = cfg.num_layers - self.num_skips
        for index, block in enumerate(self.blocks):
            skip = skips.pop() if index >= first_reader and skips else None
            h = block(h, t_emb, shared, condition, rope, skip)
            if index < self.num_skips:
                skips.append(h)
        shift, scale = self.adaln_out(t_emb).chunk(2, dim=-1)
        return self.proj_out(modulate(self.norm_out(h), shift, scale)).transpose(1, 2)  # [B, D, T]

"""Scaled dot-product attention with a choice of backend, shared by the LM and diffusion transformers.

``sdpa`` is PyTorch's ``scaled_dot_product_attention`` (flash / memory-efficient kernels on CUDA, a fused
kernel on CPU); ``xformers`` is the optional ``xformers.ops.memory_efficient_attention`` (CUDA only).
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F

ATTENTION_BACKENDS = ("sdpa", "xformers")


def check_attention_backend(backend: str, device: torch.device | str | None = None) -> None:
    """Raise a clear error when ``backend`` cannot run here (unknown name, xformers missing or on CPU)."""
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(ATTENTION_BACKENDS)}")
    if backend == "xformers":
        if importlib.util.find_spec("xformers") is None:
            raise RuntimeError(
                "attention backend 'xformers' needs the xformers package (pip install 'tokenlm[gpu]'); "
                "use attention_backend='sdpa', which needs nothing extra"
            )
        if device is not None and torch.device(device).type != "cuda":
            raise RuntimeError(
                f"attention backend 'xformers' runs on CUDA only, but the model is on {torch.device(device)}; "
                "use attention_backend='sdpa'"
            )


def key_padding_bias(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Turn a key mask ``[B, S]`` (True = attend) into a boolean attention mask ``[B, 1, 1, S]``.

    A row whose keys are all masked (a null CFG condition) is opened to all its keys instead: the keys
    are then the null embeddings, so the row attends uniformly to them and never produces NaN. Returns
    None when nothing is masked, which lets fused kernels skip the mask entirely.
    """
    if mask is None:
        return None
    mask = mask | ~mask.any(dim=-1, keepdim=True)  # [B, S]
    if bool(mask.all()):
        return None
    return mask[:, None, None, :]


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    backend: str = "sdpa",
) -> torch.Tensor:
    """Attention over heads.

    Args:
        q: ``[B, H, Tq, Dh]``; k, v: ``[B, H, Tk, Dh]``.
        mask: boolean, broadcastable to ``[B, H, Tq, Tk]``, True where attention is allowed.
        is_causal: causal mask aligned top-left (only valid when Tq == Tk).
    Returns:
        ``[B, H, Tq, Dh]``, in ``q``'s dtype; when the keys have another dtype (a float32 KV cache under bf16
        weights), the attention is computed in the keys' dtype.
    """
    if q.dtype != k.dtype:
        out = attention(q.to(k.dtype), k, v.to(k.dtype), mask=mask, is_causal=is_causal, dropout_p=dropout_p,
                        backend=backend)
        return out.to(q.dtype)
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
    return _xformers_attention(q, k, v, mask=mask, is_causal=is_causal, dropout_p=dropout_p)


def _xformers_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None,
    is_causal: bool,
    dropout_p: float,
) -> torch.Tensor:
    import xformers.ops as xops  # optional dependency, imported only when chosen

    attn_bias: object | None = None
    if is_causal:
        attn_bias = xops.LowerTriangularMask()
    elif mask is not None:
        shape = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        bias = torch.zeros(shape, dtype=q.dtype, device=q.device)
        attn_bias = bias.masked_fill(~mask.expand(shape), float("-inf"))
    out = xops.memory_efficient_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=attn_bias, p=dropout_p
    )  # [B, Tq, H, Dh]
    return out.transpose(1, 2)

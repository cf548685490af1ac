"""The output heads and the per-codebook cross-entropy in one pass over row chunks (CPU float32 training).

``codebook_cross_entropy(heads(hidden))`` materialises the logits of a whole batch (``[B, S, K * card]``: 66 MB for
8 x 253 positions x 4 x 2048 codes), then a log-softmax of the same size, its gradient and the gradient of the
logits, each a fresh allocation that the CPU has to fault in and stream through memory several times.
:func:`fused_head_cross_entropy` instead walks the rows in chunks of :data:`CHUNK_ROWS`: a chunk's logits (8 MB at
256 rows) are computed, turned into the loss and, in place, into their own gradient ``softmax - onehot``, which is
then multiplied back into the gradients of the hidden states and of the head weights, all while the chunk is still
in cache. The gradients are ready when the forward pass ends; ``backward`` only scales them by the incoming
gradient. On a 2-core AMD EPYC (8 x 253 rows, 512 -> 4 x 2048) heads + loss + backward take ~300 ms instead of
~370-400 ms, with the same loss and gradients up to float32 rounding.

The products go through oneDNN (:mod:`tokenlm.common.onednn_linear`); :func:`fused_head_cross_entropy` is used
where that routing applies (float32 on CPU, outside autocast), the plain path everywhere else.
"""

from __future__ import annotations

import torch

from tokenlm.common.onednn_linear import onednn_available, onednn_product

#: rows per chunk: at 4 x 2048 codes a chunk's logits take 8 MB, which stays in a server CPU's cache
CHUNK_ROWS = 256


def _chunk_pass(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    scale: torch.Tensor,
    num_codebooks: int,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None]:
    """Loss terms and (optionally) gradients of ``sum(scale * token_loss)``.

    Args:
        hidden: ``[M, D]`` rows; weight ``[K * card, D]``; bias ``[K * card]`` or None.
        targets: ``[M, K]`` target codes (any valid code where ``scale`` is 0); scale ``[M, K]`` weight of each term.
    Returns:
        the weighted sum (scalar), the token losses ``[M, K]`` and, with ``want_grad``, the gradients of the
        weighted sum by hidden ``[M, D]``, weight ``[K * card, D]`` and bias ``[K * card]`` (or None).
    """
    rows, dim = hidden.shape
    card = weight.shape[0] // num_codebooks
    token_loss = torch.empty(rows, num_codebooks, dtype=torch.float32)  # [M, K]
    grads = None
    if want_grad:
        weight_t = weight.t()  # [D, K * card]: the gradient product's weight; oneDNN reads the view as it is
        grads = (torch.empty_like(hidden), torch.zeros_like(weight), None if bias is None else torch.zeros_like(bias))
    for start in range(0, rows, CHUNK_ROWS):
        end = min(start + CHUNK_ROWS, rows)
        chunk = hidden[start:end]  # [c, D]
        logits = onednn_product(chunk, weight, bias).view(end - start, num_codebooks, card)  # [c, K, card]
        log_norm = torch.logsumexp(logits, dim=-1)  # [c, K]
        chunk_targets = targets[start:end, :, None]  # [c, K, 1]
        token_loss[start:end] = log_norm - logits.gather(-1, chunk_targets)[..., 0]
        if grads is None:
            continue
        grad = logits.sub_(log_norm[..., None]).exp_()  # softmax, in place of the logits: [c, K, card]
        grad.scatter_add_(-1, chunk_targets, torch.full_like(log_norm[..., None], -1.0))  # - onehot
        grad = grad.mul_(scale[start:end, :, None]).view(end - start, -1)  # [c, K * card]
        grads[0][start:end] = onednn_product(grad, weight_t)  # [c, D]
        grads[1].addmm_(grad.t(), chunk)  # [K * card, D]
        if grads[2] is not None:
            grads[2].add_(grad.sum(dim=0))
    return (token_loss * scale).sum(), token_loss, grads


class _FusedHeadCrossEntropy(torch.autograd.Function):
    """``sum(scale * token_loss)`` whose gradients are computed during the forward pass (see the module doc)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, scale, num_codebooks):  # noqa: ANN001, ANN205
        total, token_loss, grads = _chunk_pass(hidden, weight, bias, targets, scale, num_codebooks, want_grad=True)
        grad_hidden, grad_weight, grad_bias = grads
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias if grad_bias is not None else torch.empty(0))
        ctx.has_bias = grad_bias is not None
        ctx.mark_non_differentiable(token_loss)
        return total, token_loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total, _grad_token_loss):  # noqa: ANN001, ANN205
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        return (
            grad_hidden * grad_total if ctx.needs_input_grad[0] else None,
            grad_weight * grad_total if ctx.needs_input_grad[1] else None,
            grad_bias * grad_total if ctx.has_bias and ctx.needs_input_grad[2] else None,
            None,
            None,
            None,
        )


def fused_head_applies(hidden: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`fused_head_cross_entropy` serves this product: float32 on CPU outside autocast, oneDNN."""
    return (
        hidden.device.type == "cpu"
        and hidden.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and onednn_available()
    )


def fused_head_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    valid: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``codebook_cross_entropy`` of the heads' logits, without materialising them (see the module doc).

    Args:
        hidden: ``[B, S, D]`` final hidden states; weight ``[K, card, D]`` heads; bias ``[K, card]`` or None.
        targets: ``[B, K, S]`` codes (any value where invalid); valid ``[B, K, S]`` bool.
    Returns:
        the loss (the mean over codebooks of each codebook's mean cross-entropy over its valid positions) and the
        per-codebook losses ``[K]`` (detached; a codebook with no valid position counts 0).
    """
    num_codebooks, card, dim = weight.shape
    rows_targets = targets.transpose(1, 2).reshape(-1, num_codebooks)  # [B * S, K]
    rows_valid = valid.transpose(1, 2).reshape(-1, num_codebooks)  # [B * S, K]
    counts = rows_valid.sum(dim=0).clamp(min=1)  # [K]
    scale = rows_valid / (counts * num_codebooks).float()  # [B * S, K]: each term's weight in the mean
    safe_targets = torch.where(rows_valid, rows_targets, torch.zeros_like(rows_targets))
    flat_hidden = hidden.reshape(-1, dim).contiguous()
    flat_weight = weight.reshape(num_codebooks * card, dim)
    flat_bias = None if bias is None else bias.reshape(-1)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad or
                                    (bias is not None and bias.requires_grad)):
        total, token_loss = _FusedHeadCrossEntropy.apply(
            flat_hidden, flat_weight, flat_bias, safe_targets, scale, num_codebooks
        )
    else:
        total, token_loss, _ = _chunk_pass(
            flat_hidden, flat_weight, flat_bias, safe_targets, scale, num_codebooks, want_grad=False
        )
    per_codebook = (token_loss * rows_valid).sum(dim=0) / counts  # [K]
    return total, per_codebook.detach()

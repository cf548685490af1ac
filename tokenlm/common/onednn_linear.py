"""Float32 linear layers for CPU training through oneDNN's matrix kernel.

On CPU, ``F.linear`` at float32 runs MKL's ``sgemm``. For the products of a training step (thousands of rows),
oneDNN's kernel is faster on the CPUs we measured: on a 2-core AMD EPYC with AVX-512, ``[2024, 512] x [512, 2048]``
takes 21-22 ms through oneDNN against 24-30 ms through MKL (~200 against ~170 GFLOP/s), and so does the product
that gives the input's gradient. oneDNN lays the weight out for its kernel on every call anyway, so it reads the
transposed weight of the gradient product straight from a transposed view (a ``.contiguous()`` copy first cost
~80 ms per step of the 512 x 8 benchmark LM). The weight's gradient (``grad_out^T x``) stays with MKL, which is
faster there than oneDNN on transposed views.

:func:`linear` is ``F.linear`` with that routing for a float32 CPU product that will be differentiated
(:func:`routes_through_onednn`); everything else (CUDA, bf16, autocast, inference, small matrices) is plain
``F.linear``. Both give the same float32 arithmetic up to the order of summation (~1e-7 relative).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

#: smaller weights stay with ``F.linear``: oneDNN's per-call set-up outweighs its faster kernel there
MIN_ONEDNN_ELEMENTS = 1 << 16


@functools.cache
def onednn_available() -> bool:
    """True where this torch has oneDNN's linear kernel (CPU builds with mkldnn); fixed for the process."""
    ops = getattr(torch.ops, "mkldnn", None)
    return bool(torch.backends.mkldnn.is_available() and ops is not None and hasattr(ops, "_linear_pointwise"))


def onednn_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` of rows ``x`` ``[M, in]`` (contiguous) through oneDNN's kernel -> ``[M, out]``.

    ``weight`` ``[out, in]`` is a dense tensor (any strides: oneDNN lays it out for its kernel on every call, so a
    transposed view costs no more than a contiguous copy) or one prepacked with ``_reorder_linear_weight``.
    """
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``[..., in]`` -> contiguous ``[M, in]``."""
    return x.reshape(-1, x.shape[-1]).contiguous()


class OneDNNLinear(torch.autograd.Function):
    """``F.linear`` with oneDNN for the forward product and the input's gradient, MKL for the weight's gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:  # noqa: ANN001
        rows = _rows(x)  # [M, in]
        ctx.save_for_backward(rows, weight)
        ctx.input_shape, ctx.has_bias = x.shape, bias is not None
        return onednn_product(rows, weight, bias).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):  # noqa: ANN001, ANN205
        rows, weight = ctx.saved_tensors
        grad_rows = _rows(grad_out)  # [M, out]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:  # [M, out] x [out, in]: oneDNN reads the transposed view as it lays it out
            grad_x = onednn_product(grad_rows, weight.t()).view(ctx.input_shape)
        if ctx.needs_input_grad[1]:
            grad_weight = grad_rows.t().mm(rows)  # [out, in]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(dim=0)
        return grad_x, grad_weight, grad_bias


def routes_through_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear` takes oneDNN's kernel for this product: float32 on CPU, outside autocast, to be
    differentiated, with a weight of at least :data:`MIN_ONEDNN_ELEMENTS` elements, oneDNN present."""
    return (
        torch.is_grad_enabled()  # first: inference (no_grad) pays one check per call
        and (x.requires_grad or weight.requires_grad)
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and weight.numel() >= MIN_ONEDNN_ELEMENTS
        and not torch.is_autocast_enabled("cpu")
        and onednn_available()
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` for ``x`` ``[..., in]``, through oneDNN where :func:`routes_through_onednn`."""
    if routes_through_onednn(x, weight):
        return OneDNNLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)

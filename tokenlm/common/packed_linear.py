"""Linear layers of a decode step with their weights prepacked once for oneDNN, on CPU.

A generation step multiplies a few rows (batch x 2 with CFG) by every weight matrix of the model. With bf16
weights, ``F.linear`` lays each weight out for oneDNN's kernel again on every call; at two rows that costs more than
the product itself (on a 2-core AMD EPYC with AVX-512 BF16, a 2048 x 512 weight: 119 us per call, 36 us
prepacked; the 8192 x 512 LM head: 346 us, 87 us). :class:`PackedLinears` keeps one prepacked copy per weight and
reuses it for every step and every later call, so a weight is laid out once per model, not once per step. Results
are bit-identical to ``F.linear`` (the same kernel).

The copy is rebuilt when the weight changes (a new tensor after ``.to(dtype)``, or an in-place update such as
``load_state_dict`` or an optimiser step, seen through the tensor's version counter). Only bf16 weights are packed:
the copy costs one more copy of the weights, which for bf16 keeps the total at the float32 footprint (float32
prepacked would also be faster, but would double the memory of a float32 model). Elsewhere (float32, CUDA, a torch
without oneDNN, inputs that need gradients) it is plain ``F.linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PACKABLE_DTYPES = (torch.bfloat16,)


def prepacking_available() -> bool:
    """True where this torch has oneDNN's prepacked linear (CPU builds with mkldnn)."""
    ops = getattr(torch.ops, "mkldnn", None)
    return bool(
        torch.backends.mkldnn.is_available()
        and ops is not None
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


class PackedLinears:
    """Prepacked weights of one model, keyed by the weight (or the parameter a weight is a view of)."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[torch.Tensor, int, torch.Tensor]] = {}
        self.enabled = prepacking_available()

    def clear(self) -> None:
        """Drop every prepacked copy (their memory is freed)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def linear(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, owner: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``F.linear(x, weight, bias)`` for ``x`` ``[N, in]``, through a prepacked copy of ``weight`` where that
        serves. ``owner`` is the parameter ``weight`` is a view of (a fresh view per call has a fresh identity)."""
        if not self._packable(x, weight, bias):
            return F.linear(x, weight, bias)
        key = owner if owner is not None else weight
        entry = self._entries.get(id(key))
        if entry is None or entry[0] is not key or entry[1] != key._version:
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), x.shape[0])
            entry = (key, key._version, packed)
            self._entries[id(key)] = entry
        return torch.ops.mkldnn._linear_pointwise(x, entry[2], bias, "none", [], "")

    def _packable(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
        return (
            self.enabled
            and x.dim() == 2
            and x.device.type == "cpu"
            and weight.device.type == "cpu"
            and x.dtype == weight.dtype
            and weight.dtype in PACKABLE_DTYPES
            and (bias is None or bias.dtype == weight.dtype)
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        )

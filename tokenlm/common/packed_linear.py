"""Linear layers whose weights can be held prepacked for oneDNN, on CPU, for inference.

A generation step multiplies a few rows (batch x 2 with CFG) by every weight matrix of the model. ``F.linear`` lays
each weight out for oneDNN's kernel again on every call; at two rows that costs more than the product itself (on a
2-core AMD EPYC with AVX-512 BF16, a 2048 x 512 bf16 weight: 119 us per call, 36 us prepacked; the 8192 x 512 LM
head: 346 us, 87 us). A :class:`PackableLinear` lays its weight out once (:meth:`PackableLinear.pack`) and then
multiplies with the packed copy, at any number of rows, bit-identical to ``F.linear`` (the same kernel).

Packing **replaces** the plain weight rather than adding a copy: the parameter keeps its shape, dtype and device,
but its storage is released (a zero-stride view of one element), so a packed model holds its weights once, in
oneDNN's layout. :meth:`PackableLinear.unpack` restores the plain weight exactly (``to_dense`` of the packed
copy); modules that own packable layers unpack them before anything reads or writes the plain weights:
``state_dict``, ``load_state_dict``, ``.to()`` / ``.float()``, ``train()``. Where prepacking is unavailable (CUDA,
a torch without oneDNN) nothing is packed and every call is plain ``F.linear``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from tokenlm.common.onednn_linear import linear, onednn_available, onednn_product

#: serialises packing and unpacking (two generations starting at once on one model must not pack it twice); a
#: module-level lock, since a lock held by each model would make models impossible to deep-copy
_PACKING_LOCK = threading.RLock()


def prepacking_available() -> bool:
    """True where this torch has oneDNN's prepacked linear (CPU builds with mkldnn)."""
    return onednn_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def pack_weight(weight: torch.Tensor, rows: int = 2) -> torch.Tensor:
    """``weight`` ``[out, in]`` laid out once for oneDNN's linear kernel (an opaque MKLDNN tensor), tuned for
    ``rows`` input rows; :func:`packed_linear` multiplies with it at any number of rows."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), rows)


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` for ``x`` ``[..., in]``, with ``packed = pack_weight(weight)``."""
    if x.dim() == 2:
        return onednn_product(x, packed, bias)
    out = onednn_product(x.reshape(-1, x.shape[-1]), packed, bias)
    return out.view(*x.shape[:-1], out.shape[-1])


def released(like: torch.Tensor) -> torch.Tensor:
    """A stand-in for a released plain weight: ``like``'s shape, dtype and device, one element of storage."""
    return torch.zeros(1, dtype=like.dtype, device=like.device).expand(like.shape)


def is_released(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a :func:`released` stand-in (several elements over one element of storage)."""
    return tensor.numel() > 1 and tensor.untyped_storage().nbytes() == tensor.element_size()


class PackedParameter:
    """The packed form of one weight parameter (of any shape ``[..., in]``, multiplied as ``[numel / in, in]``)."""

    def __init__(self, parameter: nn.Parameter, rows: int = 2) -> None:
        if is_released(parameter):
            raise RuntimeError("this weight is already packed elsewhere: its plain values were released")
        self.parameter, self.shape = parameter, parameter.shape
        self.packed = pack_weight(parameter.data.reshape(-1, parameter.shape[-1]), rows)
        parameter.data = released(parameter.data)

    def unpack(self) -> None:
        """Give the parameter its plain weight back (exactly as it was packed)."""
        self.parameter.data = self.packed.to_dense().view(self.shape)


#: weights with fewer elements stay plain: at two rows oneDNN's packed kernel costs more than the MKL / plain
#: call it replaces for small matrices (2-core AMD EPYC, float32, tiny LM: 960 steps/s all packed, 1330 plain)
MIN_PACKED_ELEMENTS = 1 << 16


def can_pack(weight: torch.Tensor) -> bool:
    """Whether ``weight`` is worth packing here: a float32 / bf16 CPU matrix of at least
    :data:`MIN_PACKED_ELEMENTS` elements, with oneDNN present."""
    return (
        weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
        and weight.numel() >= MIN_PACKED_ELEMENTS
        and prepacking_available()
    )


def wants_grad(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a product of ``x`` and ``weight`` would be differentiated (then it must use the plain weight)."""
    return torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)


class PackableLinear(nn.Linear):
    """``nn.Linear`` whose weight can be packed for inference (:meth:`pack`); same parameters, same state dict."""

    _handle: PackedParameter | None = None

    @property
    def packed(self) -> torch.Tensor | None:
        """The prepacked weight, or None while the plain one is in use."""
        return None if self._handle is None else self._handle.packed

    def pack(self, rows: int = 2) -> bool:
        """Replace the plain weight with a prepacked copy (True when packed now or already)."""
        if self._handle is None and can_pack(self.weight):
            self._handle = PackedParameter(self.weight, rows)
        return self._handle is not None

    def unpack(self) -> None:
        """Restore the plain weight (a no-op when not packed)."""
        if self._handle is not None:
            self._handle.unpack()
            self._handle = None

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on ``x`` ``[..., in]`` without ``nn.Module``'s call machinery (the decode step's path).

        A call that wants gradients unpacks first: the packed kernel does not differentiate by the weight."""
        if self.packed is not None:
            if not wants_grad(x, self.weight):
                return packed_linear(x, self.packed, self.bias)
            self.unpack()
        return linear(x, self.weight, self.bias)  # float32 training products through oneDNN on CPU

    def run_gelu(self, x: torch.Tensor) -> torch.Tensor:
        """``F.gelu(self.run(x))`` (exact GELU), fused into the product when packed (oneDNN's eltwise post-op;
        2 rows x 2048 outputs: 12 us saved per call on a 2-core AMD EPYC)."""
        if self.packed is not None and not wants_grad(x, self.weight) and x.dim() == 2:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "gelu", [], "none")
        return F.gelu(self.run(x))

    def run_add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual + self.run(x)`` for rows ``x`` ``[N, in]``; for a plain weight without bias the addition is
        fused into the product (``addmm``: one operator instead of two, 2-3 us saved per call on small layers).
        oneDNN's fused addition measured no faster than a separate one, so packed weights add separately."""
        if self.packed is None and self.bias is None and x.dim() == 2:
            return torch.addmm(residual, x, self.weight.t())
        return residual + self.run(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)

    def __getstate__(self) -> dict:
        """Copies and pickles hold the plain weight (oneDNN's packed tensors have no storage to copy)."""
        self.unpack()
        return super().__getstate__()


class PackingMixin:
    """For a module owning :class:`PackableLinear` layers (and packed parameters of its own): plain weights come
    back before anything reads or writes them, and stale packed copies are never used.

    Subclasses call :meth:`_init_packing` in ``__init__`` and list what to pack in :meth:`packable_layers`
    (and :meth:`packable_parameters` for weight parameters multiplied directly).
    """

    def _init_packing(self) -> None:
        self._packed_parameters: dict[str, PackedParameter] = {}
        self.register_load_state_dict_pre_hook(lambda module, *args: module.unpack_weights())

    def packable_layers(self) -> Iterable[PackableLinear]:
        return ()

    def packable_parameters(self) -> dict[str, nn.Parameter]:
        return {}

    @property
    def is_packed(self) -> bool:
        return bool(self._packed_parameters) or any(layer.packed is not None for layer in self.packable_layers())

    def pack_weights(self, rows: int = 2) -> bool:
        """Pack every listed weight worth packing (:func:`can_pack`) for CPU inference; True when any weight is
        packed. Refused (False) where oneDNN is missing, off the CPU, or in training mode."""
        if self.training or not prepacking_available():
            return False
        with _PACKING_LOCK:
            for layer in self.packable_layers():
                layer.pack(rows)
            for name, parameter in self.packable_parameters().items():
                if name not in self._packed_parameters and can_pack(parameter):
                    self._packed_parameters[name] = PackedParameter(parameter, rows)
            return self.is_packed

    def packed_parameter(self, name: str) -> torch.Tensor | None:
        """The packed copy of a listed parameter, or None when it is not packed."""
        handle = self._packed_parameters.get(name)
        return None if handle is None else handle.packed

    def unpack_weights(self) -> None:
        """Restore every plain weight (exactly); the packed copies are dropped."""
        with _PACKING_LOCK:
            for layer in self.packable_layers():
                layer.unpack()
            for handle in self._packed_parameters.values():
                handle.unpack()
            self._packed_parameters.clear()

    def __getstate__(self) -> dict:
        """Copies and pickles hold the plain weights (oneDNN's packed tensors have no storage to copy)."""
        self.unpack_weights()
        return super().__getstate__()

    def state_dict(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 (nn.Module's signature)
        self.unpack_weights()
        return super().state_dict(*args, **kwargs)

    def train(self, mode: bool = True):  # noqa: ANN201
        if mode:
            self.unpack_weights()
        return super().train(mode)

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202
        self.unpack_weights()
        return super()._apply(fn, recurse)

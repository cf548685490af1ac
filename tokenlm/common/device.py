"""Device helpers shared by the backends: autocast policy and memory limits."""

from __future__ import annotations

import contextlib
import functools
import os

import torch

#: what ``from_pretrained(..., dtype=...)`` and ``--dtype`` accept
DTYPES = ("auto", "float32", "bfloat16")
#: /proc/cpuinfo flags of x86 CPUs that multiply bf16 matrices natively (AVX-512 BF16, AMX)
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def autocast(device: torch.device, enabled: bool = True, cpu: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (where bf16 is supported and ``enabled``), and on CPU when ``cpu`` (opt-in: training
    with ``solver.cpu_bf16``); a no-op context elsewhere."""
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if enabled and cpu and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compute_dtype(device: torch.device, param_dtype: torch.dtype, autocast_enabled: bool = True) -> torch.dtype:
    """The dtype activations (and KV caches) have under :func:`autocast` on ``device``."""
    if autocast_enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return param_dtype


def kv_cache_dtype(device: torch.device, param_dtype: torch.dtype, autocast_enabled: bool = True) -> torch.dtype:
    """The dtype of a generation's KV cache and cross-attention keys / values.

    On CPU it is float32 whatever the weights: a decode step's attention reads one query against the whole cache,
    and PyTorch's CPU attention kernels run that several times faster in float32 than in bf16 (2-core AMD EPYC,
    8 heads x 64, 250 keys: 57 us against 280 us); the query is cast up and the result back down. On CUDA it is
    the compute dtype (:func:`compute_dtype`).
    """
    return torch.float32 if device.type == "cpu" else compute_dtype(device, param_dtype, autocast_enabled)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on a CPU that multiplies bf16 matrices in hardware (AVX-512 BF16 or AMX, read from /proc/cpuinfo).

    ``TOKENLM_CPU_BF16=1`` / ``0`` overrides the detection (for tests, or a CPU the flags misdescribe). Elsewhere
    (no /proc/cpuinfo, or no such flag) bf16 would be emulated and slower than float32, so the answer is False.
    """
    forced = os.environ.get("TOKENLM_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return bool(NATIVE_BF16_FLAGS & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


def check_dtype(dtype: object) -> str:
    """``dtype`` as one of :data:`DTYPES` (a ``torch.dtype`` float32 / bfloat16 is accepted too)."""
    names = {torch.float32: "float32", torch.bfloat16: "bfloat16"}
    name = names.get(dtype, dtype) if isinstance(dtype, torch.dtype) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    return str(name)


#: under ``auto``, a generator with fewer parameters keeps float32 on CPU: its weights (under 8 MB) stay in the
#: CPU's caches, so a step is bound by operator dispatch rather than by reading weights, and bf16's casts only add
#: work (2-core AMD EPYC, the benchmark's tiny LM of 1.2 M parameters: ~1000 steps/s in bf16, ~1450 in float32;
#: the 6.3 M-parameter default LM runs 2.2x faster in bf16)
AUTO_BF16_MIN_PARAMS = 2_000_000


def weight_dtype(dtype: str, device: torch.device, num_params: int | None = None) -> torch.dtype:
    """The dtype a generator network's weights take for inference under ``dtype`` on ``device``.

    On a CPU, ``bfloat16`` (and ``auto`` where the CPU has native bf16) casts the weights: a decode step reads every
    weight once, so halving their bytes and using the bf16 dot-product instructions is what makes it fast. Under
    ``auto`` a network of ``num_params`` below :data:`AUTO_BF16_MIN_PARAMS` stays float32 (too small to gain). On
    CUDA the weights stay float32 and bf16 comes from autocast (see :func:`uses_autocast`).
    """
    dtype = check_dtype(dtype)
    if device.type != "cpu" or dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        return torch.bfloat16
    small = num_params is not None and num_params < AUTO_BF16_MIN_PARAMS
    return torch.bfloat16 if cpu_has_native_bf16() and not small else torch.float32


def uses_autocast(dtype: str, device: torch.device) -> bool:
    """Whether inference under ``dtype`` on ``device`` runs in bf16 autocast (CUDA, unless ``float32``)."""
    return device.type == "cuda" and check_dtype(dtype) != "float32"


def available_memory(device: torch.device) -> int:
    """Bytes that can still be allocated on ``device`` (free GPU memory, or available host RAM)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))

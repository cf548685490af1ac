"""Device helpers shared by the backends: autocast policy and memory limits."""

from __future__ import annotations

import contextlib
import os

import torch


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (where bf16 is supported); a no-op context elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compute_dtype(device: torch.device, param_dtype: torch.dtype) -> torch.dtype:
    """The dtype activations (and KV caches) have under :func:`autocast` on ``device``."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return param_dtype


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

"""AdamW with decoupled weight decay on the right parameters, warm-up + cosine schedule, and weight EMA."""

from __future__ import annotations

import math

import torch
from torch import nn

from tokenlm.common.packed_linear import PackingMixin


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices decay; norms, biases and embedding tables do not."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        is_embedding = "embed" in name.split(".")[-1] or "embedding" in name
        (no_decay if param.ndim < 2 or is_embedding else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    module: nn.Module, lr: float, betas: tuple[float, float] = (0.9, 0.95), weight_decay: float = 0.1
) -> torch.optim.AdamW:
    """AdamW (decoupled weight decay) over the trainable parameters of ``module``."""
    if lr <= 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    groups = parameter_groups(module, weight_decay)
    try:  # the fused kernel (CPU and CUDA) does the whole update in one pass over each tensor
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=True)
    except (RuntimeError, ValueError):  # a device or dtype the fused kernel does not cover
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))


def cosine_with_warmup(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_with_warmup(step, warmup_steps, total_steps, min_ratio)
    )


class EMA:
    """Exponential moving average of a module's floating-point trainable parameters (fp32 shadow copies)."""

    def __init__(self, module: nn.Module, decay: float = 0.99) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {
            name: p.detach().float().clone()
            for name, p in module.named_parameters()
            if p.requires_grad and p.is_floating_point()
        }

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        params = dict(module.named_parameters())
        names = list(self.shadow)
        shadows = [self.shadow[n] for n in names]
        currents = [params[n].detach().float() for n in names]
        torch._foreach_lerp_(shadows, currents, 1 - self.decay)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the averaged weights into ``module`` (a model packed for inference, e.g. by the last samples,
        gets its plain weights back first)."""
        for part in module.modules():
            if isinstance(part, PackingMixin):
                part.unpack_weights()
        params = dict(module.named_parameters())
        for name, value in self.shadow.items():
            params[name].copy_(value.to(params[name].dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise ValueError(f"EMA state lacks {missing[:5]}")
        for name in self.shadow:
            self.shadow[name].copy_(state[name])

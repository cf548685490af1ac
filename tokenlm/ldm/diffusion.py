"""Diffusion with diffusers' schedulers: v-prediction, zero terminal SNR, trailing timesteps, rescaled CFG."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, SchedulerMixin

from conditioners.base import Condition

SCHEDULERS = ("ddim", "dpmpp")
NUM_TRAIN_TIMESTEPS = 1000


def make_scheduler(kind: str = "ddim", num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> SchedulerMixin:
    """DDIM or DPM-Solver++ with ``v_prediction``, ``rescale_betas_zero_snr`` and ``trailing`` spacing."""
    common = dict(
        num_train_timesteps=num_train_timesteps, beta_schedule="scaled_linear", prediction_type="v_prediction",
        rescale_betas_zero_snr=True, timestep_spacing="trailing",
    )
    if kind == "ddim":
        return DDIMScheduler(clip_sample=False, set_alpha_to_one=False, **common)
    if kind == "dpmpp":
        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", final_sigmas_type="zero", **common)
    raise ValueError(f"unknown scheduler {kind!r}; choose one of {', '.join(SCHEDULERS)}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class DiffusionParams:
    """How the diffusion backend samples.

    Attributes:
        steps: denoising steps.
        cfg_coef: classifier-free guidance ``uncond + cfg_coef * (cond - uncond)``; 1 = none.
        cfg_rescale: phi of guidance rescaling (Lin et al. 2024), 0 = none.
        scheduler: ``ddim`` or ``dpmpp`` (DPM-Solver++).
    """

    steps: int = 50
    cfg_coef: float = 5.0
    cfg_rescale: float = 0.75
    scheduler: str = "ddim"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be an int in [1, 1000], got {self.steps!r}")
        if not _is_number(self.cfg_coef) or self.cfg_coef < 0:
            raise ValueError(f"cfg_coef must be a number >= 0 (1 disables guidance), got {self.cfg_coef!r}")
        if not _is_number(self.cfg_rescale) or not 0 <= self.cfg_rescale <= 1:
            raise ValueError(f"cfg_rescale must be a number in [0, 1] (0 disables rescaling), got {self.cfg_rescale!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")

    @property
    def uses_cfg(self) -> bool:
        return self.cfg_coef != 1.0


def rescale_cfg(guided: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Rescale guided predictions ``[B, ...]`` to the per-sample std of the conditional ones, mixed by ``phi``
    (what diffusers' ``rescale_noise_cfg`` computes)."""
    dims = list(range(1, cond.dim()))
    rescaled = guided * (cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
    return phi * rescaled + (1 - phi) * guided


def v_target(scheduler: SchedulerMixin, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``v = sqrt(a_t) noise - sqrt(1 - a_t) x0``, the scheduler's own definition."""
    return scheduler.get_velocity(x0, noise, t)


Denoiser = Callable[[torch.Tensor, torch.Tensor, Condition | None], torch.Tensor]
StepHook = Callable[[torch.Tensor, int, int], torch.Tensor]


def guided_prediction(
    model: Denoiser, x: torch.Tensor, t: torch.Tensor, cond: Condition | None, null: Condition | None,
    params: DiffusionParams,
) -> torch.Tensor:
    """The model output ``[B, D, T]`` with CFG (one 2B batch) and guidance rescaling."""
    batch = x.shape[0]
    if null is None:
        return model(x, t.expand(batch), cond)
    both = Condition.cat_batch([cond, null])
    out = model(torch.cat([x, x]), t.expand(2 * batch), both)  # [2B, D, T]
    out_cond, out_null = out[:batch], out[batch:]
    guided = out_null + params.cfg_coef * (out_cond - out_null)
    return rescale_cfg(guided, out_cond, params.cfg_rescale) if params.cfg_rescale > 0 else guided


def denoise(
    model: Denoiser,
    x: torch.Tensor,
    cond: Condition | None,
    null: Condition | None,
    params: DiffusionParams,
    *,
    start: int = 0,
    generator: torch.Generator | None = None,
    after_step: StepHook | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run the sampler from step ``start`` of ``params.steps`` on ``x`` ``[B, D, T]``.

    ``after_step(x, step, timestep_next)`` may edit the latent after each step (inpainting);
    ``timestep_next`` is -1 after the last step.
    """
    scheduler = make_scheduler(params.scheduler)
    scheduler.set_timesteps(params.steps, device=x.device)
    timesteps = scheduler.timesteps
    for index in range(start, len(timesteps)):
        t = timesteps[index]
        out = guided_prediction(model, scheduler.scale_model_input(x, t), t[None], cond, null, params)
        x = scheduler.step(out, t, x, generator=generator).prev_sample
        if after_step is not None:
            x = after_step(x, index, int(timesteps[index + 1]) if index + 1 < len(timesteps) else -1)
        if callback is not None:
            callback(index + 1 - start, len(timesteps) - start)
    return x


def start_step(params: DiffusionParams, strength: float) -> int:
    """First sampler step of an SDEdit run at ``strength`` in [0, 1] (1 = from pure noise)."""
    return min(params.steps, params.steps - round(strength * params.steps))

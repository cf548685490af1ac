"""Zero-shot editing with a trained diffusion backend: style transfer (SDEdit), inpainting, super-resolution."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import julius
import torch

from tokenlm.audio import batch_audio
from tokenlm.ldm.backend import LDMBackend
from tokenlm.ldm.diffusion import DiffusionParams, make_scheduler, start_step

EDIT_MODES = ("style", "inpaint", "superres")
Span = tuple[float, float]


def check_strength(strength: object) -> float:
    """``strength`` as a float in [0, 1] (0 keeps the input, 1 starts from pure noise)."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise ValueError(f"strength must be a number in [0, 1] (0 keeps the input, 1 ignores it), got {strength!r}")
    return float(strength)


#: lowest super-resolution cutoff: below it the low-pass filter grows without bound and nothing audible is kept
MIN_CUTOFF_HZ = 20.0


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_cutoff(cutoff_hz: object, source_rate: int, model_rate: int) -> float:
    """The super-resolution cutoff in Hz: ``cutoff_hz``, default half the input's rate; in [20, model Nyquist)."""
    nyquist = model_rate / 2
    cutoff = min(source_rate, model_rate) / 2 if cutoff_hz is None else cutoff_hz
    if not _is_real(cutoff) or not MIN_CUTOFF_HZ <= cutoff < nyquist:
        raise ValueError(f"cutoff_hz must be in [{MIN_CUTOFF_HZ:g}, {nyquist:.0f}) Hz for this {model_rate} Hz "
                         f"model, got {cutoff!r}; is the input already at the model's rate?")
    return float(cutoff)


def check_spans(spans: Span | Sequence[Span], duration: float) -> list[Span]:
    """Inpainting spans ``(start, end)`` in seconds, each inside the ``duration`` s clip."""
    if isinstance(spans, tuple) and len(spans) == 2 and all(_is_real(v) for v in spans):
        spans = [spans]
    if isinstance(spans, (str, bytes)) or not isinstance(spans, Sequence):
        raise ValueError(f"mask must be (start, end) in seconds or a list of such spans, got {spans!r}")
    checked = []
    for span in spans:
        if not (isinstance(span, (tuple, list)) and len(span) == 2 and all(_is_real(v) for v in span)):
            raise ValueError(f"a mask span must be (start, end) in seconds, got {span!r}")
        start, end = float(span[0]), float(span[1])
        if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start < end <= duration + 1e-9:
            raise ValueError(
                f"mask span ({start}, {end}) s lies outside the {duration:.3f} s clip or is empty; "
                f"give 0 <= start < end <= {duration:.3f}"
            )
        checked.append((start, end))
    if not checked:
        raise ValueError(f"inpainting needs at least one (start, end) mask span to regenerate, got mask={spans!r}")
    return checked


def load_input(backend: LDMBackend, audio: torch.Tensor | str | Path, sample_rate: int | None,
               batch: int) -> tuple[torch.Tensor, int]:
    """The input ``[B, C, N]`` at the model's rate and channels (resampled / remixed) and its source rate;
    longer than the model's window is an error."""
    wav, source_rate = batch_audio(audio, sample_rate, backend.sample_rate, backend.channels, batch,
                                   name="audio", rate_name="sample_rate", max_seconds=backend.max_duration,
                                   too_long="the input is {seconds:.2f} s but this model edits at most {limit} s; "
                                   "trim it")
    seconds = wav.shape[-1] / backend.sample_rate
    if seconds > backend.max_duration + 1e-9:
        raise ValueError(
            f"the input is {seconds:.2f} s but this model edits at most {backend.max_duration} s at once; trim it"
        )
    return wav, source_rate


@torch.no_grad()
def sdedit_latent(
    backend: LDMBackend, attributes: list[dict[str, Any]], x0: torch.Tensor, strength: float,
    params: DiffusionParams, generator: torch.Generator | None,
) -> torch.Tensor:
    """Noise the normalised latent ``x0`` ``[B, D, T]`` to ``strength`` and denoise it under the prompts.

    The noise is the first draw of ``generator``, as in plain generation, so strength 1 (pure noise at the
    zero-SNR last timestep) reproduces :meth:`LDMBackend.generate_audio` with the same seed.
    """
    noise = backend.initial_noise(x0.shape[0], x0.shape[-1], generator)  # [B, D, T]
    start = start_step(params, strength)
    if start >= params.steps:
        return x0
    scheduler = make_scheduler(params.scheduler)
    scheduler.set_timesteps(params.steps, device=x0.device)
    t = scheduler.timesteps[start]
    x = make_scheduler("ddim").add_noise(x0, noise, t[None])
    return backend.sample_latents(attributes, x, params, start=start, generator=generator)


@torch.no_grad()
def inpaint_latent(
    backend: LDMBackend, attributes: list[dict[str, Any]], x0: torch.Tensor, regenerate: torch.Tensor,
    params: DiffusionParams, generator: torch.Generator | None,
) -> torch.Tensor:
    """Regenerate the frames ``regenerate`` ``[T]`` (bool) of ``x0`` ``[B, D, T]``; after every step the known
    frames are re-imposed at the next step's noise level, and exactly at the end. A DiT trained with masked
    latents also reads the known frames as clean context."""
    noise = backend.initial_noise(x0.shape[0], x0.shape[-1], generator)
    forward = make_scheduler("ddim")
    keep = ~regenerate.to(x0.device)[None, None]  # [1, 1, T]

    def impose(x: torch.Tensor, step: int, t_next: int) -> torch.Tensor:
        known = x0 if t_next < 0 else forward.add_noise(x0, noise, torch.tensor([t_next], device=x0.device))
        return torch.where(keep, known, x)

    x = impose(noise, -1, int(forward.config.num_train_timesteps) - 1)
    context = None
    if backend.dit.config.context:
        context = backend.context_of(x0, keep[0].expand(x0.shape[0], -1))  # [B, D + 1, T]
    return backend.sample_latents(attributes, x, params, generator=generator, after_step=impose, context=context)


def edit(
    backend: LDMBackend,
    attributes: list[dict[str, Any]],
    audio: torch.Tensor | str | Path,
    *,
    mode: str,
    params: DiffusionParams,
    sample_rate: int | None = None,
    strength: float | None = None,
    mask: Span | Sequence[Span] | None = None,
    cutoff_hz: float | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Edit ``audio`` under the prompts; returns ``[B, C, N]`` at the model rate, as long as the input.

    Modes:
        ``style``: SDEdit at ``strength`` (default 0.6).
        ``inpaint``: regenerate the ``mask`` spans ``(start, end)`` seconds; the rest is the input, exactly.
        ``superres``: keep the input below ``cutoff_hz`` (default: half the input's sample rate), let the model
            fill the band above it (SDEdit at ``strength``, default 0.6, then band-split recombination).
    """
    if mode not in EDIT_MODES:
        raise ValueError(f"edit mode must be one of {', '.join(EDIT_MODES)}, got {mode!r}")
    if mode != "inpaint" and mask is not None:
        raise ValueError(f"mask is for mode='inpaint', not {mode!r}")
    if mode == "inpaint" and strength is not None:
        raise ValueError("inpainting regenerates the masked spans from noise; strength is for 'style' / 'superres'")
    if mode != "superres" and cutoff_hz is not None:
        raise ValueError(f"cutoff_hz is for mode='superres', not {mode!r}")
    if mode == "inpaint" and mask is None:
        raise ValueError("mode='inpaint' needs mask=(start, end) seconds (or a list of spans) to regenerate")
    if mode != "inpaint":
        check_strength(0.6 if strength is None else strength)
    wav, source_rate = load_input(backend, audio, sample_rate, len(attributes))  # [B, C, N]
    if mode == "inpaint":
        spans = check_spans(mask, wav.shape[-1] / backend.sample_rate)
    cutoff = check_cutoff(cutoff_hz, source_rate, backend.sample_rate) if mode == "superres" else None
    attributes = backend.with_timing(attributes, [wav.shape[-1] / backend.sample_rate] * len(attributes))
    backend.conditioning.validate(attributes)
    generator = backend.generator_for(seed)
    x0 = backend.encode_audio(wav)  # [B, D, T]
    num_samples = wav.shape[-1]
    wav = wav.to(backend.device)
    if mode == "inpaint":
        samples = torch.zeros(num_samples, dtype=torch.bool, device=wav.device)  # [N]
        frames = torch.zeros(x0.shape[-1], dtype=torch.bool, device=wav.device)  # [T]
        for start, end in spans:
            samples[round(start * backend.sample_rate): round(end * backend.sample_rate)] = True
            frames[math.floor(start * backend.frame_rate): math.ceil(end * backend.frame_rate)] = True
        out = backend.decode(inpaint_latent(backend, attributes, x0, frames, params, generator))[..., :num_samples]
        return torch.where(samples, out, wav)  # the known region is the input, sample for sample
    strength = check_strength(0.6 if strength is None else strength)
    out = backend.decode(sdedit_latent(backend, attributes, x0, strength, params, generator))[..., :num_samples]
    if mode == "style":
        return out
    ratio = cutoff / backend.sample_rate
    return julius.lowpass_filter(wav, ratio) + out - julius.lowpass_filter(out, ratio)

"""Autoregressive generation of codebook patterns with a pre-allocated KV cache and guidance."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator

import torch

from conditioners.base import Condition
from conditioners.fuser import FusedCondition
from tokenlm.common.device import autocast, compute_dtype, kv_cache_dtype
from tokenlm.common.progress import progress_bar
from tokenlm.lm.model import LMModel
from tokenlm.lm.patterns import CodebookPattern
from tokenlm.lm.sampling import SamplingParams, apply_cfg, sample_next

UNKNOWN = -1  # a sequence position still to be generated

ProgressCallback = Callable[[int, int], None]


@torch.no_grad()
def generate_codes(
    model: LMModel,
    pattern: CodebookPattern,
    condition: FusedCondition | Condition | None,
    null_condition: FusedCondition | Condition | None,
    params: SamplingParams,
    *,
    batch_size: int | None = None,
    prompt: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: ProgressCallback | None = None,
    autocast_enabled: bool = True,
) -> torch.Tensor:
    """Generate ``pattern.num_frames`` frames of codes.

    The model runs in its weights' dtype (bf16 weights: bf16 activations and KV cache), or under bf16 autocast on
    CUDA when ``autocast_enabled``; logits are cast to float32 before guidance and sampling.

    Args:
        condition: the fused condition (cross / prepend / sum routes), or a plain cross-attention
            :class:`Condition` ``[B, S, D]``; None for an unconditional LM.
        null_condition: the same for null attributes; required when ``params.cfg_coef != 1``.
        prompt: ``[B, K, Tp]`` codes to continue (Tp <= num_frames); they are kept as they are.
        callback: called as ``callback(steps_done, steps_total)`` after every step.
    Returns:
        codes ``[B, K, T]``.
    """
    steps = iterate_codes(model, pattern, condition, null_condition, params, batch_size=batch_size, prompt=prompt,
                          generator=generator, progress=progress, callback=callback,
                          autocast_enabled=autocast_enabled)
    sequence, _ = collections.deque(steps, maxlen=1)[0]  # filled in place: the last yield holds every step
    return pattern.revert(sequence)


def frames_ready(pattern: CodebookPattern) -> torch.Tensor:
    """``[S]`` long: how many leading frames are complete (every codebook) once sequence steps ``0 .. s`` are
    known."""
    last_step = pattern.step_index.max(dim=0).values  # [T]: the step that completes each frame
    if last_step.numel():
        last_step = torch.cummax(last_step, dim=0).values  # frame t is "leading" once frames 0 .. t all are
    done = torch.zeros(pattern.num_steps, dtype=torch.long)
    done.index_add_(0, last_step, torch.ones_like(last_step))
    return done.cumsum(0)  # [S]


@torch.no_grad()
def iterate_codes(
    model: LMModel,
    pattern: CodebookPattern,
    condition: FusedCondition | Condition | None,
    null_condition: FusedCondition | Condition | None,
    params: SamplingParams,
    *,
    batch_size: int | None = None,
    prompt: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: ProgressCallback | None = None,
    autocast_enabled: bool = True,
) -> Iterator[tuple[torch.Tensor, int]]:
    """:func:`generate_codes` step by step: yields ``(sequence, last)`` whenever sequence steps ``0 .. last`` are
    final (first for the known start and prompt, then after every generated step). ``sequence`` ``[B, K, S]`` is
    the one being filled (read it before asking for the next step); :func:`frames_ready` says which frames are
    complete. The steps, and the random draws, are exactly those of :func:`generate_codes`.
    """
    cfg = model.config
    device = next(model.parameters()).device
    condition, null_condition = _fused(condition), _fused(null_condition)
    batch = condition.batch_size if condition is not None else batch_size
    if batch is None:
        raise ValueError("batch_size is needed when there is no condition")
    use_cfg = params.uses_cfg
    if use_cfg and condition is not None and null_condition is None:
        raise ValueError("cfg_coef != 1 needs a null condition")
    use_cfg = use_cfg and condition is not None

    known = torch.full((batch, cfg.num_codebooks, pattern.num_frames), UNKNOWN, dtype=torch.long, device=device)
    if prompt is not None:
        prompt_frames = min(prompt.shape[-1], pattern.num_frames)
        known[..., :prompt_frames] = prompt[..., :prompt_frames].to(device)
    sequence = pattern.build(known, cfg.special_token)  # [B, K, S]
    unknown_steps = (sequence == UNKNOWN).flatten(0, 1).any(dim=0).nonzero()
    if unknown_steps.numel() == 0:
        yield sequence, pattern.num_steps - 1
        return
    first, last = int(unknown_steps[0]), pattern.num_steps - 1
    yield sequence, first - 1

    param_dtype = next(model.parameters()).dtype
    if device.type == "cpu":
        model.pack_weights()  # once per model, not per call: the step weights in oneDNN's layout, in place
    dtype = compute_dtype(device, param_dtype, autocast_enabled)
    cache_dtype = kv_cache_dtype(device, param_dtype, autocast_enabled)
    with autocast(device, autocast_enabled):
        passes = _make_passes(model, condition, null_condition, use_cfg, params.two_step_cfg, batch, last, dtype,
                              cache_dtype)
    bar = progress_bar(total=last - first + 1, disable=not progress, desc="generating", unit="steps")
    try:
        for step in range(first - 1, last):
            with autocast(device, autocast_enabled):  # entered per step: what runs between steps is not under it
                if step == first - 1:  # prefill: the prompt (or the start step) in one chunk
                    chunk = sequence[:, :, : step + 1]  # [B, K, steps]
                    logits = [model(chunk if n == batch else torch.cat([chunk, chunk]), ctx, cache)[:, :, -1]
                              for n, ctx, cache in passes]  # each [n, K, card]
                else:  # one step: the lean path
                    tokens = sequence[:, :, step]  # [B, K]
                    logits = [model.decode_step(tokens if n == batch else torch.cat([tokens, tokens]), ctx, cache)
                              for n, ctx, cache in passes]
                if use_cfg:
                    cond, uncond = logits if len(logits) == 2 else logits[0].split(batch)
                    next_logits = apply_cfg(cond.float(), uncond.float(), params.cfg_coef)
                else:
                    next_logits = logits[0].float()
                tokens = sample_next(next_logits, params, generator)  # [B, K]
            target = sequence[:, :, step + 1]
            sequence[:, :, step + 1] = torch.where(target == UNKNOWN, tokens, target)
            bar.update(1)
            if callback is not None:
                callback(step - first + 2, last - first + 1)
            yield sequence, step + 1
    finally:
        bar.close()


def _fused(condition: FusedCondition | Condition | None) -> FusedCondition | None:
    """A plain :class:`Condition` is a cross-attention condition."""
    return FusedCondition(cross=condition) if isinstance(condition, Condition) else condition


def _make_passes(
    model: LMModel,
    condition: FusedCondition | None,
    null_condition: FusedCondition | None,
    use_cfg: bool,
    two_step: bool,
    batch: int,
    capacity: int,
    dtype: torch.dtype,
    cache_dtype: torch.dtype,
) -> list[tuple[int, object, object]]:
    """The forward passes of one step: ``(batch, condition context, KV cache)`` each.

    Each cache holds ``capacity`` sequence steps plus the prepended condition tokens of its context; the cache and
    the cross-attention keys / values are in ``cache_dtype`` (see :func:`~tokenlm.common.device.kv_cache_dtype`).
    """
    device = next(model.parameters()).device

    def make(size: int, cond: FusedCondition | None) -> tuple[int, object, object]:
        context = model.condition_context(cond.to(device, dtype)) if cond is not None else None
        if context is not None and context.kv is not None and cache_dtype != dtype:
            context.kv = [(k.to(cache_dtype), v.to(cache_dtype)) for k, v in context.kv]  # once per call
        prefix = context.prefix_length if context is not None else 0
        return size, context, model.new_cache(size, capacity + prefix, device, cache_dtype)

    if not use_cfg:
        return [make(batch, condition)]
    if two_step:
        return [make(batch, condition), make(batch, null_condition)]
    return [make(2 * batch, condition.cat_batch(null_condition))]


def concat_conditions_batch(first: Condition, second: Condition) -> Condition:
    """Stack two conditions along the batch, padding the shorter sequence with masked zeros."""
    return Condition.cat_batch([first, second])

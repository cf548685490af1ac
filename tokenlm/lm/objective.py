"""The LM training objective on a batch: CFG condition dropout, pattern cross-entropy and RR."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from conditioners.base import Condition
from conditioners.dropout import DropoutDraw
from tokenlm.lm.losses import POOLINGS, pool_sequence, rr_from_pooled
from tokenlm.lm.patterns import build_pattern

RR_MODES = ("cfg", "all", "off")


@dataclass(frozen=True)
class LMObjective:
    """How the LM loss is put together.

    Attributes:
        rr_weight: lambda of ``L = L_ce + lambda * L_rr`` (3.0 in the paper).
        rr_pooling: ``max`` (the paper's best) or ``mean``.
        rr_mode: ``cfg`` applies RR on condition-dropped samples only (the paper), ``all`` on every batch,
            ``off`` never.
    """

    rr_weight: float = 3.0
    rr_pooling: str = "max"
    rr_mode: str = "cfg"

    def __post_init__(self) -> None:
        if self.rr_mode not in RR_MODES:
            raise ValueError(f"rr_mode must be one of {RR_MODES}, got {self.rr_mode!r}")
        if self.rr_pooling not in POOLINGS:
            raise ValueError(f"rr_pooling must be one of {POOLINGS}, got {self.rr_pooling!r}")
        if self.rr_weight < 0:
            raise ValueError(f"rr_weight must be >= 0, got {self.rr_weight}")


Gather = Callable[[torch.Tensor], torch.Tensor]


def lm_loss(
    backend: Any,
    codes: torch.Tensor,
    frame_mask: torch.Tensor,
    attributes: list[dict[str, Any]],
    dropped: torch.Tensor,
    objective: LMObjective,
    gather: Gather | None = None,
    attribute_dropped: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Loss of an :class:`~tokenlm.lm.backend.LMBackend` on codes ``[B, K, T]`` (valid frames ``[B, T]``).

    Args:
        dropped: ``[B]`` bool, samples whose conditions are replaced by the null condition (CFG dropout).
        gather: optional differentiable all-gather across ranks, so RR sees the global batch.
        attribute_dropped: attribute -> ``[B]`` bool, samples that lose that attribute only.
    Returns:
        ``loss`` (to optimise), ``ce``, ``rr`` and per-codebook ``ce_k`` / ``ppl_k`` (detached for logging).
    """
    lm, conditioning = backend.lm, backend.conditioning
    batch, num_codebooks, frames = codes.shape
    pattern = build_pattern(backend.pattern_kind, num_codebooks, frames, backend.delays)
    sequence = pattern.build(codes, lm.config.special_token)  # [B, K, S]
    time_index = pattern.time_index.to(codes.device)  # [K, S]
    frame_ok = frame_mask.gather(1, time_index.clamp(min=0).flatten()[None].expand(batch, -1))
    valid = (time_index >= 0) & frame_ok.view(batch, num_codebooks, -1)  # [B, K, S]

    drops = {name: mask.detach().cpu().bool() for name, mask in (attribute_dropped or {}).items()}
    draw = DropoutDraw(dropped.detach().cpu().bool(), drops)
    rr_rows = _rr_rows(objective, dropped)
    condition, text = None, None
    if conditioning.attributes:
        if bool(draw.dropped.all()):  # a CFG batch: the null condition of every attribute
            condition = conditioning.encode(attributes, null=True)
        else:  # dropped values become None, each conditioner's null value
            condition = conditioning.encode(draw.apply(attributes) if draw.any else attributes)
        text = condition  # what RR pools: the un-dropped conditions
        if draw.any and rr_rows is not None and objective.rr_weight > 0:
            with torch.no_grad():
                text = conditioning.encode(attributes)
    context = lm.condition_context(condition)
    hidden = lm.hidden_states(sequence[..., :-1], context)  # [B, S-1, D]
    ce, per_codebook = lm.cross_entropy(hidden, sequence[..., 1:], valid[..., 1:])  # heads + loss
    losses = {"ce": ce}

    if text is not None and rr_rows is not None and objective.rr_weight > 0:
        position_mask = valid[..., 1:].any(dim=1)  # [B, S-1]: positions that predict a real frame
        tokens = text if isinstance(text, Condition) else text.as_sequence()  # [B, S_all, D]: every route's tokens
        text_pooled = pool_sequence(tokens.embeds.detach(), tokens.mask, objective.rr_pooling)[rr_rows]
        audio_pooled = pool_sequence(hidden, position_mask, objective.rr_pooling)[rr_rows]
        if gather is not None:
            text_pooled, audio_pooled = gather(text_pooled), gather(audio_pooled)
        rr = rr_from_pooled(text_pooled, audio_pooled)
        losses["rr"] = rr
        losses["loss"] = ce + objective.rr_weight * rr
    else:
        losses["loss"] = ce
    for k in range(num_codebooks):
        losses[f"ce_{k}"] = per_codebook[k].detach()
        losses[f"ppl_{k}"] = per_codebook[k].detach().exp()
    return losses


def _rr_rows(objective: LMObjective, dropped: torch.Tensor) -> torch.Tensor | None:
    """Which samples RR is computed on, or None when it does not apply to this batch."""
    if objective.rr_mode == "off":
        return None
    if objective.rr_mode == "all":
        return torch.ones_like(dropped, dtype=torch.bool)
    return dropped.bool() if bool(dropped.any()) else None

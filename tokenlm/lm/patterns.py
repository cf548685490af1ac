"""Codebook interleaving patterns: how K parallel code streams are laid out over LM steps.

A pattern maps each (codebook k, frame t) to one sequence step s. The sequence always starts with an
all-special step 0 (the LM's start token); step s is predicted from steps < s. Positions that hold no
frame are filled with the special token (``cardinality``), the padding id MusicGen also uses.

Layouts for K codebooks and T frames:

- ``delay`` (MusicGen): codebook k is shifted right by ``delays[k]`` (default k) steps; S = T + max delay + 1.
- ``parallel``: all codebooks at the same step; S = T + 1.
- ``flattened``: one codebook per step, frame by frame; S = K * T + 1.
- ``coarse_first``: codebook 0 over all frames first, then the other codebooks in parallel; S = 2T + 1.
"""

from __future__ import annotations

import torch

PATTERNS = ("delay", "parallel", "flattened", "coarse_first")


class CodebookPattern:
    """A layout of ``[K, T]`` codes onto ``[K, S]`` sequence steps.

    Attributes:
        time_index: ``[K, S]`` long, the frame held by codebook k at step s, or -1 (special token).
        step_index: ``[K, T]`` long, the step at which frame t of codebook k sits.
    """

    def __init__(self, time_index: torch.Tensor, num_frames: int) -> None:
        self.time_index = time_index  # [K, S]
        self.num_codebooks, self.num_steps = time_index.shape
        self.num_frames = num_frames
        step_index = torch.full((self.num_codebooks, num_frames), -1, dtype=torch.long)
        k_idx, s_idx = (time_index >= 0).nonzero(as_tuple=True)
        step_index[k_idx, time_index[k_idx, s_idx]] = s_idx
        if bool((step_index < 0).any()):
            raise ValueError("invalid pattern: some (codebook, frame) positions have no step")
        self.step_index = step_index  # [K, T]

    @property
    def valid(self) -> torch.Tensor:
        """``[K, S]`` bool, True where a step holds a real frame."""
        return self.time_index >= 0

    def build(self, codes: torch.Tensor, special_token: int) -> torch.Tensor:
        """Lay out codes ``[B, K, T]`` as a sequence ``[B, K, S]``; empty positions get ``special_token``."""
        batch, num_codebooks, num_frames = codes.shape
        if (num_codebooks, num_frames) != (self.num_codebooks, self.num_frames):
            raise ValueError(
                f"codes have {num_codebooks} codebooks x {num_frames} frames, the pattern expects "
                f"{self.num_codebooks} x {self.num_frames}"
            )
        if num_frames == 0:  # nothing to lay out: every step is empty
            return torch.full((batch, num_codebooks, self.num_steps), special_token, dtype=codes.dtype,
                              device=codes.device)
        time_index = self.time_index.to(codes.device)
        gathered = codes.gather(2, time_index.clamp(min=0).expand(batch, -1, -1))  # [B, K, S]
        return torch.where(time_index >= 0, gathered, torch.full_like(gathered, special_token))

    def revert(self, sequence: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`build`: ``[B, K, S, ...]`` -> ``[B, K, T, ...]`` (extra trailing dims allowed)."""
        return _gather_steps(sequence, self.step_index.to(sequence.device))

    def revert_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K, S - 1, card]`` (position s predicts step s + 1) -> ``[B, K, T, card]``."""
        return _gather_steps(logits, self.step_index.to(logits.device) - 1)


def _gather_steps(sequence: torch.Tensor, step_index: torch.Tensor) -> torch.Tensor:
    batch, num_codebooks = sequence.shape[:2]
    index = step_index.view(1, num_codebooks, -1, *([1] * (sequence.dim() - 3)))
    index = index.expand(batch, num_codebooks, step_index.shape[1], *sequence.shape[3:])
    return sequence.gather(2, index)


def stereo_delays(num_codebooks: int) -> list[int]:
    """Delays of interleaved stereo codebooks (left 0, right 0, left 1, ...): each left/right pair shares one,
    0, 0, 1, 1, ... as stereo MusicGen lays them out."""
    if num_codebooks < 2 or num_codebooks % 2:
        raise ValueError(f"stereo codebooks come in left/right pairs: the count must be even, got {num_codebooks}")
    return [k // 2 for k in range(num_codebooks)]


def build_pattern(
    kind: str, num_codebooks: int, num_frames: int, delays: list[int] | None = None
) -> CodebookPattern:
    """Make the pattern ``kind`` (one of :data:`PATTERNS`) for ``num_codebooks`` x ``num_frames``."""
    if num_codebooks < 1 or num_frames < 0:
        raise ValueError(f"a pattern needs >= 1 codebook and >= 0 frames, got {num_codebooks} and {num_frames}")
    frames = torch.arange(num_frames)
    if kind in ("delay", "parallel"):
        if kind == "parallel":
            delays = [0] * num_codebooks
        delays = list(range(num_codebooks)) if delays is None else list(delays)
        if len(delays) != num_codebooks or min(delays) < 0:
            raise ValueError(f"delays must be {num_codebooks} non-negative ints, got {delays}")
        steps = torch.arange(num_frames + max(delays) + 1)
        time_index = steps[None, :] - 1 - torch.tensor(delays)[:, None]  # [K, S]
        time_index = time_index.masked_fill((time_index < 0) | (time_index >= num_frames), -1)
    elif kind == "flattened":
        time_index = torch.full((num_codebooks, num_codebooks * num_frames + 1), -1, dtype=torch.long)
        for k in range(num_codebooks):
            time_index[k, 1 + k :: num_codebooks] = frames
    elif kind == "coarse_first":
        second = num_frames if num_codebooks > 1 else 0
        time_index = torch.full((num_codebooks, num_frames + second + 1), -1, dtype=torch.long)
        time_index[0, 1 : num_frames + 1] = frames
        if second:
            time_index[1:, num_frames + 1 :] = frames
    else:
        raise ValueError(f"unknown codebook pattern {kind!r}; choose one of {', '.join(PATTERNS)}")
    return CodebookPattern(time_index.long(), num_frames)

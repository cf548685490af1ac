"""Training objectives of the token LM: per-codebook cross-entropy and representation regularization (RR).

RR (Shi et al., 2023): on classifier-free-guidance batches, where the LM sees no text, the similarity
structure of the batch's audio representations is pulled towards that of its text representations:

    T_b = pool(text embeddings of sample b), A_b = pool(LM last hidden states of sample b)
    T_bb' = cos(T_b, T_b'), A_bb' = cos(A_b, A_b')
    L_rr = sum_{b != b'} (T_bb' - A_bb')^2 / (B (B - 1))

Max pooling worked best in the paper (mean pooling gave no gain); lambda = 3 with 10% CFG batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POOLINGS = ("max", "mean")


def codebook_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy per codebook over valid positions, averaged over codebooks.

    Args:
        logits: ``[B, K, S, card]``; targets: ``[B, K, S]`` (any value where invalid); valid: ``[B, K, S]`` bool.
    Returns:
        the scalar loss and the per-codebook losses ``[K]`` (a codebook with no valid position counts 0).
    """
    card = logits.shape[-1]
    safe_targets = torch.where(valid, targets, torch.zeros_like(targets))
    token_loss = F.cross_entropy(logits.reshape(-1, card).float(), safe_targets.reshape(-1), reduction="none")
    token_loss = token_loss.view(targets.shape) * valid  # [B, K, S]
    counts = valid.sum(dim=(0, 2))  # [K]
    per_codebook = token_loss.sum(dim=(0, 2)) / counts.clamp(min=1)  # [K]
    return per_codebook.mean(), per_codebook


def pool_sequence(x: torch.Tensor, mask: torch.Tensor, mode: str = "max") -> torch.Tensor:
    """Pool ``[B, T, D]`` over valid positions (``mask`` ``[B, T]``) -> ``[B, D]``; an empty row gives zeros."""
    if mode not in POOLINGS:
        raise ValueError(f"unknown pooling {mode!r}; choose one of {', '.join(POOLINGS)}")
    mask = mask.bool()
    has_any = mask.any(dim=1, keepdim=True)  # [B, 1]
    if mode == "max":
        pooled = x.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
    else:
        pooled = (x * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)
    return torch.where(has_any, pooled, torch.zeros_like(pooled))


def cosine_similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """``[B, D]`` -> ``[B, B]`` cosine similarities (zero vectors give 0 similarity)."""
    unit = F.normalize(x.float(), dim=-1, eps=1e-8)
    return unit @ unit.T


def representation_regularization(
    text: torch.Tensor,
    text_mask: torch.Tensor,
    audio: torch.Tensor,
    audio_mask: torch.Tensor,
    pooling: str = "max",
) -> torch.Tensor:
    """L_rr between text ``[B, S, Dt]`` and audio ``[B, T, Da]`` representations (masks ``[B, S]``, ``[B, T]``).

    The text side is a target: it is detached, so no gradient reaches the text encoder. Returns a scalar
    (0 for a batch of one, which has no pairs).
    """
    batch = text.shape[0]
    if audio.shape[0] != batch:
        raise ValueError(f"text batch {batch} != audio batch {audio.shape[0]}")
    text_pooled = pool_sequence(text.detach(), text_mask, pooling)  # [B, Dt]
    audio_pooled = pool_sequence(audio, audio_mask, pooling)  # [B, Da]
    return rr_from_pooled(text_pooled, audio_pooled)


def rr_from_pooled(text_pooled: torch.Tensor, audio_pooled: torch.Tensor) -> torch.Tensor:
    """L_rr from pooled representations ``[B, Dt]`` and ``[B, Da]`` (e.g. gathered across ranks)."""
    batch = text_pooled.shape[0]
    if batch < 2:
        return audio_pooled.sum() * 0.0
    diff = cosine_similarity_matrix(text_pooled) - cosine_similarity_matrix(audio_pooled)  # [B, B]
    off_diagonal = ~torch.eye(batch, dtype=torch.bool, device=diff.device)
    return (diff.pow(2) * off_diagonal).sum() / (batch * (batch - 1))

"""The field's standard metrics on embeddings and classifier outputs: FAD, KL (both directions), the
Inception Score and the CLAP score. The embedders that produce their inputs live in ``tokenlm.eval.embedders``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tokenlm.eval.frechet import frechet_between


def _pool(embeddings: Sequence[np.ndarray], pooling: str) -> np.ndarray:
    """Stack ``[T_i, D]`` embeddings: every frame (``"frames"``) or one mean per clip (``"mean"``)."""
    if pooling == "frames":
        return np.concatenate([np.asarray(e, np.float64).reshape(-1, np.shape(e)[-1]) for e in embeddings])
    if pooling == "mean":
        return np.stack([np.asarray(e, np.float64).reshape(-1, np.shape(e)[-1]).mean(0) for e in embeddings])
    raise ValueError(f"unknown pooling {pooling!r}; allowed: ['frames', 'mean']")


def frechet_audio_distance(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                           pooling: str = "frames") -> float:
    """FAD between the Gaussians of two sets of per-clip embeddings ``[T_i, D]`` (frames pooled, as in the
    original FAD with VGGish; ``pooling="mean"`` uses one vector per clip)."""
    return frechet_between(_pool(generated, pooling), _pool(reference, pooling))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``[N, C]`` logits."""
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _kl(p: np.ndarray, q: np.ndarray, epsilon: float) -> np.ndarray:
    """Row-wise KL(p || q) with ``epsilon`` added inside the logarithms."""
    return (p * (np.log(p + epsilon) - np.log(q + epsilon))).sum(-1)


def kl_divergences(generated_logits: np.ndarray, reference_logits: np.ndarray,
                   epsilon: float = 1e-6) -> dict[str, float]:
    """Mean paired KL divergence between the softmax class distributions of generated clip i and reference
    clip i, in both directions: ``kl_ref_gen`` = KL(p_ref || p_gen) (audiocraft's ``kl_div(log p_gen,
    p_ref)``) and ``kl_gen_ref`` = KL(p_gen || p_ref)."""
    gen, ref = softmax(generated_logits), softmax(reference_logits)
    if gen.shape != ref.shape:
        raise ValueError(f"logits must pair up: generated {gen.shape} vs reference {ref.shape}")
    return {"kl_ref_gen": float(_kl(ref, gen, epsilon).mean()), "kl_gen_ref": float(_kl(gen, ref, epsilon).mean())}


def inception_score(logits: np.ndarray, epsilon: float = 1e-12) -> float:
    """``exp(E_x KL(p(y|x) || p(y)))`` with p(y|x) the softmax of ``[N, C]`` logits and p(y) their mean."""
    probs = softmax(logits)
    marginal = probs.mean(0, keepdims=True)
    return float(np.exp(_kl(probs, marginal, epsilon).mean()))


def clap_score(text_embeddings: np.ndarray, audio_embeddings: np.ndarray) -> float:
    """Mean cosine similarity (not x100) between text embedding i and audio embedding i."""
    text = np.asarray(text_embeddings, np.float64).reshape(len(text_embeddings), -1)
    audio = np.asarray(audio_embeddings, np.float64).reshape(len(audio_embeddings), -1)
    if text.shape != audio.shape:
        raise ValueError(f"embeddings must pair up: text {text.shape} vs audio {audio.shape}")
    text = text / np.linalg.norm(text, axis=1, keepdims=True).clip(min=1e-12)
    audio = audio / np.linalg.norm(audio, axis=1, keepdims=True).clip(min=1e-12)
    return float((text * audio).sum(1).mean())


def clap_score_shuffled(text_embeddings: np.ndarray, audio_embeddings: np.ndarray) -> float:
    """The CLAP score of mismatched pairs: the mean cosine of text i with audio j over all i != j (what
    :func:`clap_score` gives, in expectation, after shuffling the captions); a CLAP that reads the audio scores
    the real pairs above it."""
    text = np.asarray(text_embeddings, np.float64).reshape(len(text_embeddings), -1)
    audio = np.asarray(audio_embeddings, np.float64).reshape(len(audio_embeddings), -1)
    if text.shape != audio.shape or len(text) < 2:
        raise ValueError(f"need >= 2 paired embeddings: text {text.shape} vs audio {audio.shape}")
    text = text / np.linalg.norm(text, axis=1, keepdims=True).clip(min=1e-12)
    audio = audio / np.linalg.norm(audio, axis=1, keepdims=True).clip(min=1e-12)
    total = text.sum(0) @ audio.sum(0)  # the sum of every pair's cosine
    return float((total - (text * audio).sum()) / (len(text) * (len(text) - 1)))

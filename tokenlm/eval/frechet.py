"""Fréchet distance between Gaussians fitted to two sets of feature vectors, computed stably: the trace of
the matrix square root of S1 S2 is the sum of the square roots of the eigenvalues of the symmetric
S1^(1/2) S2 S1^(1/2), so no non-symmetric ``sqrtm`` (and no complex parts) is needed."""

from __future__ import annotations

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` of ``[N, D]`` features (N >= 2)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features shaped [N >= 2, D], got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values")
    return features.mean(0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`` for Gaussians (mu1, S1) and (mu2, S2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    root = _sqrt_psd(sigma1)
    middle = root @ sigma2 @ root
    trace_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def frechet_between(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two ``[N, D]`` feature sets."""
    return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))


def quality_score(generated: np.ndarray, reference: np.ndarray, set_size: int | None = None,
                  seed: int = 0) -> dict[str, float | int]:
    """Fréchet distance on features standardised by the reference set's mean and deviation, on equal-sized
    random subsets (``set_size``; default: the smaller set), since the distance is biased at small N.

    Returns ``{"frechet_distance", "set_size", "dims"}``.
    """
    generated, reference = np.asarray(generated, np.float64), np.asarray(reference, np.float64)
    if generated.ndim != 2 or reference.ndim != 2 or generated.shape[1] != reference.shape[1]:
        raise ValueError(f"feature sets must be [N, D] with the same D, got {generated.shape} and {reference.shape}")
    available = min(len(generated), len(reference))
    size = available if set_size is None else int(set_size)
    if size < 2 or size > available:
        raise ValueError(f"set_size must be in [2, {available}] (clips available in the smaller set), got {set_size}")
    rng = np.random.default_rng(seed)
    generated = generated[rng.choice(len(generated), size, replace=False)]
    reference = reference[rng.choice(len(reference), size, replace=False)]
    mean, std = reference.mean(0), reference.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    distance = frechet_between((generated - mean) / std, (reference - mean) / std)
    return {"frechet_distance": distance, "set_size": size, "dims": int(generated.shape[1])}

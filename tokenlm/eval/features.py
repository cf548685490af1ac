"""Hand-crafted clip features for the quality score: log-mel band means and deviations, MFCC means and
deviations, mean chroma, spectral centroid and flatness statistics (170 numbers per clip)."""

from __future__ import annotations

import numpy as np
import torch

from tokenlm.eval import dsp

FEATURE_DIM = 2 * dsp.N_MELS + 2 * dsp.N_MFCC + 12 + 4


def clip_features(power: torch.Tensor, mel_power: torch.Tensor, chroma: torch.Tensor) -> np.ndarray:
    """``[FEATURE_DIM]`` float64 features from a clip's ``[F, T]`` power spectrogram, ``[n_mels, T]`` mel power
    and ``[12, T']`` chroma."""
    logmel = torch.log10(mel_power + dsp.EPS)  # [n_mels, T]
    cepstra = dsp.mfcc(logmel)  # [n_mfcc, T]
    chroma_mean = chroma.mean(1)
    chroma_mean = chroma_mean / (chroma_mean.sum() + dsp.EPS)
    centroid = torch.log2(dsp.spectral_centroid(power).clamp(min=20.0))
    flatness = dsp.spectral_flatness(power)
    parts = [logmel.mean(1), logmel.std(1, unbiased=False), cepstra.mean(1), cepstra.std(1, unbiased=False),
             chroma_mean, centroid.mean()[None], centroid.std(unbiased=False)[None], flatness.mean()[None],
             flatness.std(unbiased=False)[None]]
    return torch.cat([part.double() for part in parts]).numpy()

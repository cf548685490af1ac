"""Spectral shape detectors: noise colour (PSD slope), rumble / hiss band, waveform from harmonic ratios."""

from __future__ import annotations

import math

import torch

from tokenlm.eval.dsp import ANALYSIS_RATE, fft_freqs

#: (slope in dB per octave above which the colour applies, colour), tested in order
COLOUR_SLOPES = ((-1.5, "white"), (-4.5, "pink"), (-math.inf, "brown"))
SLOPE_BAND = (100.0, 6000.0)
LOW_BAND_HZ, HIGH_BAND_HZ = 500.0, 2500.0


def psd_slope(mean_power: torch.Tensor, n_fft: int, band: tuple[float, float] = SLOPE_BAND) -> float:
    """Slope in dB per octave of a ``[F]`` mean power spectrum, fitted over ``band`` with every octave given
    the same weight (bins weighted by 1 / f)."""
    freqs = fft_freqs(n_fft).double()
    keep = (freqs >= band[0]) & (freqs <= band[1]) & (mean_power.double() > 0)
    if int(keep.sum()) < 4:
        return float("nan")
    x = torch.log2(freqs[keep])
    y = 10.0 * torch.log10(mean_power.double()[keep])
    w = 1.0 / freqs[keep]
    xm = (w * x).sum() / w.sum()
    ym = (w * y).sum() / w.sum()
    return float((w * (x - xm) * (y - ym)).sum() / (w * (x - xm) ** 2).sum())


def colour_from_slope(slope: float) -> str | None:
    """``"white"``, ``"pink"`` or ``"brown"`` for a PSD slope in dB/octave (None for NaN)."""
    if not math.isfinite(slope):
        return None
    for threshold, colour in COLOUR_SLOPES:
        if slope > threshold:
            return colour
    return "brown"


def band_fractions(mean_power: torch.Tensor, n_fft: int) -> tuple[float, float]:
    """Fractions of the power below 500 Hz and above 2.5 kHz (DC excluded)."""
    freqs = fft_freqs(n_fft)
    power = mean_power.clone()
    power[0] = 0.0
    total = float(power.sum()) + 1e-20
    return float(power[freqs < LOW_BAND_HZ].sum()) / total, float(power[freqs > HIGH_BAND_HZ].sum()) / total


def band_from_fractions(low: float, high: float, share: float = 0.7) -> str:
    """``"low"`` (a rumble), ``"high"`` (a hiss) or ``"broad"``."""
    if low >= share:
        return "low"
    if high >= share:
        return "high"
    return "broad"


def harmonic_ratios(mean_power: torch.Tensor, n_fft: int, f0: float, count: int = 6) -> torch.Tensor:
    """``[count]`` amplitudes of harmonics 1..count relative to the fundamental, each the largest magnitude
    within +-3 % of k x f0 (0 above the analysis band)."""
    freqs = fft_freqs(n_fft)
    magnitude = mean_power.sqrt()
    amplitudes = torch.zeros(count)
    for k in range(1, count + 1):
        target = k * f0
        if target > 0.45 * ANALYSIS_RATE:
            break
        window = (freqs >= 0.97 * target) & (freqs <= 1.03 * target)
        if window.any():
            amplitudes[k - 1] = magnitude[window].max()
    return amplitudes / (amplitudes[0] + 1e-12)


def waveform_from_ratios(ratios: torch.Tensor) -> str:
    """Classify harmonic amplitude ratios: sawtooth (even harmonics ~ 1/k), square (odd only, ~ 1/k),
    triangle (odd only, ~ 1/k^2) or sine (no overtones)."""
    r2, r3 = float(ratios[1]), float(ratios[2])
    even = max(r2, float(ratios[3]) if ratios.numel() > 3 else 0.0)
    if even >= 0.25:
        return "sawtooth"
    if r3 >= 0.2:
        return "square"
    if r3 >= 0.05:
        return "triangle"
    return "sine"

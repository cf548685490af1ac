"""Onsets and tempo: spectral-flux onset strength, peak picking, autocorrelation tempo with a regression
refinement on the onset times."""

from __future__ import annotations

import torch

from tokenlm.eval.dsp import ANALYSIS_RATE, HOP

FRAME_RATE = ANALYSIS_RATE / HOP  # 100 onset-envelope frames per second
BPM_RANGE = (40.0, 240.0)


def onset_strength(mel_power: torch.Tensor, exponent: float = 0.5) -> torch.Tensor:
    """``[T]`` onset strength: the summed positive rise between frames of the mel power raised to
    ``exponent`` (0.5: magnitude, so strong hits outweigh faint ones, as a listener hears the beat), scaled
    to a maximum of 1; the first frame is 0."""
    compressed = mel_power.clamp(min=0.0) ** exponent
    rise = (compressed[:, 1:] - compressed[:, :-1]).clamp(min=0.0).sum(0)
    rise = torch.nn.functional.pad(rise, (1, 0))
    return rise / rise.max().clamp(min=1e-12)


def flux_db(mel_power: torch.Tensor, floor_db: float = 80.0) -> torch.Tensor:
    """``[T]`` level-independent onset strength: the mean over mel bands of the positive rise in dB between
    frames (levels floored ``floor_db`` below the maximum), scaled to a maximum of 1. Faint hits (a hi-hat)
    count as much as loud ones, which suits finding every hit rather than the beat."""
    db = 10.0 * torch.log10(mel_power + 1e-10)
    db = db.clamp(min=float(db.max()) - floor_db)
    rise = torch.nn.functional.pad((db[:, 1:] - db[:, :-1]).clamp(min=0.0).mean(0), (1, 0))
    return rise / rise.max().clamp(min=1e-12)


def pick_onsets(envelope: torch.Tensor, delta: float = 0.3, wait: int = 5) -> torch.Tensor:
    """Frame indices of onsets: local maxima (over +-3 frames) higher than ``delta`` x the envelope's maximum
    plus its median, at least ``wait`` frames apart. Times are refined to a fraction of a frame by parabolic
    interpolation; returns ``[K]`` float frame positions."""
    if envelope.numel() < 3 or float(envelope.max()) <= 0:
        return torch.zeros(0)
    pooled = torch.nn.functional.max_pool1d(envelope[None, None], 7, 1, 3)[0, 0]
    threshold = float(envelope.median()) + delta * float(envelope.max())
    peaks = torch.nonzero((envelope == pooled) & (envelope > threshold)).flatten()
    kept: list[int] = []
    for peak in peaks.tolist():
        if not kept or peak - kept[-1] >= wait:
            kept.append(peak)
    if not kept:
        return torch.zeros(0)
    index = torch.tensor(kept)
    left = envelope[(index - 1).clamp(min=0)]
    mid = envelope[index]
    right = envelope[(index + 1).clamp(max=envelope.numel() - 1)]
    curvature = left - 2 * mid + right
    shift = torch.where(curvature.abs() > 1e-9, 0.5 * (left - right) / curvature, torch.zeros_like(mid))
    return index.float() + shift.clamp(-0.5, 0.5)


def merge_onsets(first: torch.Tensor, second: torch.Tensor, within: float = 3.0) -> torch.Tensor:
    """Sorted union of two onset lists (frame positions); an onset of ``second`` closer than ``within``
    frames to one of ``first`` is dropped."""
    if first.numel() == 0 or second.numel() == 0:
        return torch.cat([first, second]).sort().values
    distance = (second[:, None] - first[None, :]).abs().min(1).values
    return torch.cat([first, second[distance >= within]]).sort().values


def _autocorrelation(envelope: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Unbiased autocorrelation ``[max_lag + 1]`` of the mean-removed envelope, normalised to lag 0 = 1."""
    centred = envelope - envelope.mean()
    n = centred.numel()
    size = 2 * n
    spectrum = torch.fft.rfft(centred.double(), size)
    acf = torch.fft.irfft(spectrum.abs().square(), size)[: max_lag + 1]
    acf = acf / (n - torch.arange(max_lag + 1)).clamp(min=1)
    return (acf / acf[0].clamp(min=1e-12)).float()


def estimate_tempo(envelope: torch.Tensor, onsets: torch.Tensor, ratio: float = 0.6) -> float | None:
    """Tempo in bpm, or None when there is no periodic pulse.

    The beat period is the shortest autocorrelation peak (between 40 and 240 bpm) reaching ``ratio`` of the
    highest one, then refined by a least-squares fit of the onset times that fall on that grid.
    """
    low_lag = int(FRAME_RATE * 60.0 / BPM_RANGE[1])
    high_lag = min(int(FRAME_RATE * 60.0 / BPM_RANGE[0]), envelope.numel() // 2)
    if high_lag <= low_lag + 2 or onsets.numel() < 3:
        return None
    acf = _autocorrelation(envelope, high_lag + 1)
    lags = torch.arange(low_lag, high_lag + 1)
    values = acf[lags]
    is_peak = (values >= acf[lags - 1]) & (values >= acf[lags + 1]) & (values > 0)
    if not is_peak.any():
        return None
    best = float(values[is_peak].max())
    candidates = lags[is_peak & (values >= ratio * best)]
    lag = int(candidates[0])
    left, mid, right = float(acf[lag - 1]), float(acf[lag]), float(acf[lag + 1])
    curvature = left - 2 * mid + right
    period = lag + (0.5 * (left - right) / curvature if abs(curvature) > 1e-9 else 0.0)
    return 60.0 * FRAME_RATE / _refine_period(onsets, period)


def _refine_period(onsets: torch.Tensor, period: float, tolerance: float = 0.2) -> float:
    """Least-squares beat period from the onsets within ``tolerance`` periods of a grid through the
    strongest alignment; falls back to ``period`` with fewer than three such onsets."""
    times = onsets.double()
    best_count, best_phase = 0, 0.0
    for anchor in times.tolist():
        offsets = (times - anchor) / period
        count = int(((offsets - offsets.round()).abs() < tolerance).sum())
        if count > best_count:
            best_count, best_phase = count, anchor
    offsets = (times - best_phase) / period
    on_grid = (offsets - offsets.round()).abs() < tolerance
    if int(on_grid.sum()) < 3:
        return period
    beats = offsets.round()[on_grid]
    chosen = times[on_grid]
    beats_centred = beats - beats.mean()
    denominator = float((beats_centred**2).sum())
    if denominator <= 0:
        return period
    return float((beats_centred * (chosen - chosen.mean())).sum() / denominator)

"""Fundamental frequency tracking with YIN (de Cheveigné & Kawahara, 2002), vectorised over frames."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tokenlm.eval.dsp import ANALYSIS_RATE, HOP

FMIN, FMAX = 50.0, 2600.0
FRAME = 1024
THRESHOLD = 0.15


@dataclass
class PitchTrack:
    """Per-frame YIN results on the 10 ms analysis grid.

    Attributes:
        f0: ``[T]`` fundamental frequency in Hz (meaningful where ``voiced``).
        aperiodicity: ``[T]`` cumulative-mean-normalised difference at the chosen lag (0 = periodic).
        voiced: ``[T]`` bool, periodic (aperiodicity < threshold) and not silent.
    """

    f0: torch.Tensor
    aperiodicity: torch.Tensor
    voiced: torch.Tensor


def yin(wav: torch.Tensor, level_db: torch.Tensor, threshold: float = THRESHOLD, fmin: float = FMIN,
        fmax: float = FMAX, sample_rate: int = ANALYSIS_RATE, silence_db: float = 40.0) -> PitchTrack:
    """YIN on centred frames of 1024 samples every 10 ms.

    ``level_db`` is the ``[T]`` frame level (``dsp.frame_db``); frames more than ``silence_db`` below the
    loudest frame are never voiced. The lag is the first dip of the cumulative-mean-normalised difference
    below ``threshold`` (its local minimum, refined by parabolic interpolation); frames without one are
    unvoiced and report the global minimum.
    """
    tau_min = max(2, int(sample_rate / fmax))
    tau_max = int(sample_rate / fmin)
    width = FRAME - tau_max  # integration window
    padded = torch.nn.functional.pad(wav, (FRAME // 2, FRAME // 2 + HOP))
    frames = padded.unfold(0, FRAME, HOP)[: wav.shape[0] // HOP + 1].float()  # [T, FRAME]
    size = 2 * FRAME
    spectrum = torch.fft.rfft(frames, size)
    head = torch.fft.rfft(frames[:, :width], size)
    corr = torch.fft.irfft(spectrum * head.conj(), size)[:, : tau_max + 1]  # [T, tau] r(tau) = sum x[j] x[j+tau]
    energy = torch.nn.functional.pad(frames.square().cumsum(1), (1, 0))  # [T, FRAME + 1]
    lags = torch.arange(tau_max + 1)
    shifted = energy[:, lags + width] - energy[:, lags]  # [T, tau] energy of x[tau : tau + width]
    diff = (energy[:, width:width + 1] + shifted - 2.0 * corr).clamp(min=0.0)  # [T, tau]
    cumulative = diff[:, 1:].cumsum(1)
    cmnd = torch.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * lags[1:] / (cumulative + 1e-12)

    search = cmnd[:, tau_min:]  # [T, L]
    below = search < threshold
    has_dip = below.any(1)
    first = below.double().argmax(1)  # first lag index below threshold
    index = torch.arange(search.shape[1])[None, :]
    after = index >= first[:, None]
    run = after & (torch.cumsum(after & ~below, 1) == 0)  # the contiguous dip that starts at ``first``
    dip = torch.where(run, search, torch.full_like(search, float("inf"))).argmin(1)
    best = torch.where(has_dip, dip, search.argmin(1)) + tau_min  # [T]

    rows = torch.arange(cmnd.shape[0])
    left = cmnd[rows, (best - 1).clamp(min=1)]
    mid = cmnd[rows, best]
    right = cmnd[rows, (best + 1).clamp(max=tau_max)]
    curvature = left - 2.0 * mid + right
    shift = torch.where(curvature.abs() > 1e-12, 0.5 * (left - right) / curvature, torch.zeros_like(mid))
    tau = best.double() + shift.clamp(-1.0, 1.0)
    f0 = (sample_rate / tau).float()
    loud = level_db > level_db.max() - silence_db
    voiced = has_dip & loud & (f0 >= fmin) & (f0 <= fmax)
    return PitchTrack(f0=f0, aperiodicity=mid.float(), voiced=voiced)

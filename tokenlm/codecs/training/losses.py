"""Reconstruction losses for codec training: multi-scale mel, multi-resolution STFT, time domain; SI-SNR.

Example::

    loss = ReconstructionLoss(sample_rate=16000)
    terms = loss(recon, target)  # {"mel": ..., "stft": ..., "l1": ...}, each a scalar tensor
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers.audio_utils import mel_filter_bank

#: floor under magnitudes before the log, relative to each item's loudest bin at that scale (-60 dB): bins the
#: target leaves empty (most of them for a pure tone) stop dominating the loss with 1 / magnitude gradients
RELATIVE_FLOOR = 1e-3
#: absolute floor (silent items)
LOG_FLOOR = 1e-5
#: the smallest RMS a target is normalised by (-50 dBFS): a silent crop must not blow its artefacts up
RMS_FLOOR = 3e-3


def log_magnitude_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between log magnitudes ``[B, F, T]``, each floored at ``RELATIVE_FLOOR`` x the target item's peak."""
    floor = (RELATIVE_FLOOR * y.amax(dim=(1, 2), keepdim=True)).clamp_min(LOG_FLOOR)  # [B, 1, 1]
    return F.l1_loss(torch.log(x + floor), torch.log(y + floor))


def normalise_pair(recon: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both signals divided by the target's RMS per item, so quiet and loud clips weigh alike in every term."""
    rms = target.float().pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(RMS_FLOOR)  # [B, 1, 1]
    return recon.float() / rms, target.float() / rms


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """``[B, C, N]`` waveform -> ``[B * C, n_fft // 2 + 1, frames]`` STFT magnitude (Hann window, centred)."""
    flat = wav.reshape(-1, wav.shape[-1]).float()  # [B * C, N]
    spec = torch.stft(flat, n_fft, hop_length=hop, window=window, center=True, return_complex=True)
    return spec.abs()  # [B * C, F, frames]


class MelScale(nn.Module):
    """STFT magnitude -> mel magnitude at one scale (Slaney mel filters from transformers)."""

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int) -> None:
        super().__init__()
        filters = mel_filter_bank(
            num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
            max_frequency=sample_rate / 2, sampling_rate=sample_rate, norm="slaney", mel_scale="slaney",
        )  # [F, M]
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("filters", torch.from_numpy(filters).float().T.contiguous(), persistent=False)  # [M, F]
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, C, N]`` -> ``[B * C, M, frames]``."""
        return self.filters @ stft_magnitude(wav, self.n_fft, self.hop, self.window)


def mel_bins(n_fft: int, most: int = 64) -> int:
    """Mel bands for an ``n_fft`` window: at most ``most``, and few enough that no band falls between two FFT
    bins (an empty filter) at short windows."""
    return max(1, min(most, n_fft // 3))


class MultiScaleMelLoss(nn.Module):
    """EnCodec's mel loss: at each window ``2^i``, L1 between linear mel magnitudes plus L1 between their logs,
    averaged over scales. The log term weighs quiet and loud content alike; the linear term weighs loud peaks."""

    def __init__(self, sample_rate: int, scales: Sequence[int] = (6, 7, 8, 9, 10, 11), n_mels: int = 64) -> None:
        super().__init__()
        self.mels = nn.ModuleList(MelScale(sample_rate, 2**i, mel_bins(2**i, n_mels)) for i in scales)

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = recon.new_zeros(())
        for mel in self.mels:
            x, y = mel(recon), mel(target)
            total = total + F.l1_loss(x, y) + log_magnitude_l1(x, y)
        return total / len(self.mels)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence plus log-magnitude L1 at several FFT sizes (Parallel WaveGAN). The long windows
    resolve a few hertz, which is what keeps pitch; the short ones keep onsets."""

    def __init__(self, fft_sizes: Sequence[int] = (2048, 512, 128)) -> None:
        super().__init__()
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        for n in self.fft_sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = recon.new_zeros(())
        for n in self.fft_sizes:
            window = getattr(self, f"window_{n}")
            x = stft_magnitude(recon, n, n // 4, window)
            y = stft_magnitude(target, n, n // 4, window)
            convergence = torch.linalg.vector_norm(y - x) / (torch.linalg.vector_norm(y) + LOG_FLOOR)
            total = total + convergence + log_magnitude_l1(x, y)
        return total / len(self.fft_sizes)


class ReconstructionLoss(nn.Module):
    """The weighted reconstruction terms of a codec: ``{"mel", "stft", "l1"}`` (unweighted values) and
    ``"total"``, their weighted sum, on signals normalised by the target's RMS per item.

    The time-domain L1 is what gets a SEANet decoder phase-coherent quickly (spectral terms alone leave it
    making DC and up-sampling artefacts for thousands of steps); the spectral terms keep noise and detail."""

    def __init__(
        self,
        sample_rate: int,
        mel_weight: float = 1.0,
        stft_weight: float = 1.0,
        l1_weight: float = 1.0,
        mel_scales: Sequence[int] = (6, 7, 8, 9, 10, 11),
        stft_sizes: Sequence[int] = (2048, 512, 128),
    ) -> None:
        super().__init__()
        self.weights = {"mel": float(mel_weight), "stft": float(stft_weight), "l1": float(l1_weight)}
        self.mel = MultiScaleMelLoss(sample_rate, mel_scales)
        self.stft = MultiResolutionSTFTLoss(stft_sizes)

    def forward(
        self, recon: torch.Tensor, target: torch.Tensor, spectral_scale: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """The terms for ``recon`` / ``target`` ``[B, C, N]``; ``spectral_scale`` multiplies the mel and STFT
        weights (0 skips computing them)."""
        recon, target = normalise_pair(recon, target)
        spectral = spectral_scale > 0
        terms = {
            "mel": self.mel(recon, target) if self.weights["mel"] and spectral else recon.new_zeros(()),
            "stft": self.stft(recon, target) if self.weights["stft"] and spectral else recon.new_zeros(()),
            "l1": F.l1_loss(recon.float(), target.float()),
        }
        scales = {"mel": spectral_scale, "stft": spectral_scale, "l1": 1.0}
        terms["total"] = sum(self.weights[name] * scales[name] * terms[name] for name in self.weights)
        return terms


def si_snr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-noise ratio in dB per item: ``[B, C, N]`` pairs -> ``[B]`` (channels joined).

    Both signals are made zero-mean; the estimate is projected on the reference, and the ratio of the projection's
    energy to the residual's is returned (higher is better; identical signals give a very large value).
    """
    if estimate.shape != reference.shape:
        raise ValueError(f"si_snr needs equal shapes, got {tuple(estimate.shape)} and {tuple(reference.shape)}")
    est = estimate.reshape(estimate.shape[0], -1).double()
    ref = reference.reshape(reference.shape[0], -1).double()
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return (10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))).float()


@functools.lru_cache(maxsize=4)
def _distance_scales(sample_rate: int) -> tuple[MelScale, ...]:
    """The mel filterbanks of :func:`mel_distance` (windows 2^6..2^11), built once per sample rate."""
    return tuple(MultiScaleMelLoss(sample_rate).mels)


def mel_distance(recon: torch.Tensor, target: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Multi-scale mel distance (mean absolute log-mel difference over windows 2^6..2^11), per item ``[B]``."""
    mels = [mel.to(recon.device) for mel in _distance_scales(sample_rate)]
    per_item = []
    for item in range(recon.shape[0]):
        x, y = recon[item : item + 1], target[item : item + 1]
        total = sum(
            (torch.log10(m(x) + LOG_FLOOR) - torch.log10(m(y) + LOG_FLOOR)).abs().mean() for m in mels
        )
        per_item.append(total / len(mels))
    return torch.stack(per_item)

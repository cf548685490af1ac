"""Shared signal analysis: resampling to the analysis rate, STFTs, mel / MFCC / chroma filterbanks.

Everything here works on one mono clip as a float32 torch tensor ``[N]`` at :data:`ANALYSIS_RATE`.
"""

from __future__ import annotations

import functools
import math

import julius
import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

#: every detector runs at this sample rate (clips are resampled to it once)
ANALYSIS_RATE = 16000
#: hop of the analysis frames, 10 ms
HOP = 160
#: FFT size of the main STFT (64 ms)
N_FFT = 1024
#: FFT size of the long STFT used for chroma and harmonics (0.5 s, 1.95 Hz bins)
LONG_FFT = 8192
LONG_HOP = 2048
N_MELS = 64
N_MFCC = 13
EPS = 1e-10


def to_analysis_rate(wav: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mono float32 ``[N]`` at :data:`ANALYSIS_RATE` from ``[N]`` or ``[C, N]`` audio at ``sample_rate``."""
    wav = torch.as_tensor(np.asarray(wav, dtype=np.float32) if not isinstance(wav, torch.Tensor) else wav).float()
    if wav.dim() == 2:
        wav = wav.mean(dim=0)
    if wav.dim() != 1:
        raise ValueError(f"expected audio shaped [N] or [C, N], got shape {tuple(wav.shape)}")
    if sample_rate != ANALYSIS_RATE:
        wav = julius.resample_frac(wav, int(sample_rate), ANALYSIS_RATE)
    return wav.contiguous()


@functools.lru_cache(maxsize=4)
def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft)


def stft_power(wav: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """Power spectrogram ``[n_fft // 2 + 1, T]`` (centred frames, zero padding), T = N // hop + 1."""
    if wav.shape[-1] < n_fft // 2 + 1:
        wav = torch.nn.functional.pad(wav, (0, n_fft // 2 + 1 - wav.shape[-1]))
    spec = torch.stft(wav, n_fft, hop, window=_window(n_fft), center=True, pad_mode="constant", return_complex=True)
    return spec.real.square() + spec.imag.square()


def fft_freqs(n_fft: int, sample_rate: int = ANALYSIS_RATE) -> torch.Tensor:
    """Centre frequency in Hz of each rfft bin."""
    return torch.arange(n_fft // 2 + 1, dtype=torch.float32) * sample_rate / n_fft


@functools.lru_cache(maxsize=4)
def mel_matrix(n_fft: int = N_FFT, n_mels: int = N_MELS, sample_rate: int = ANALYSIS_RATE) -> torch.Tensor:
    """Slaney mel filterbank ``[n_mels, n_fft // 2 + 1]`` from 30 Hz to Nyquist (librosa's defaults)."""
    bank = mel_filter_bank(n_fft // 2 + 1, n_mels, 30.0, sample_rate / 2, sample_rate, norm="slaney",
                           mel_scale="slaney")
    return torch.from_numpy(bank.T.astype(np.float32))


@functools.lru_cache(maxsize=2)
def dct_matrix(n_out: int = N_MFCC, n_in: int = N_MELS) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``[n_out, n_in]`` (scipy's ``dct(norm="ortho")``)."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis.float()


def log_mel(power: torch.Tensor) -> torch.Tensor:
    """``[n_mels, T]`` log10 mel power from a ``[F, T]`` power spectrogram of the main STFT."""
    return torch.log10(mel_matrix() @ power + EPS)


def mfcc(logmel: torch.Tensor) -> torch.Tensor:
    """``[n_mfcc, T]`` MFCCs (in dB scale, as librosa) from ``[n_mels, T]`` log10 mel power."""
    return dct_matrix() @ (10.0 * logmel)


@functools.lru_cache(maxsize=2)
def chroma_matrix(n_fft: int = LONG_FFT, sample_rate: int = ANALYSIS_RATE, low_hz: float = 55.0,
                  high_hz: float = 5000.0, width: float = 0.3) -> torch.Tensor:
    """``[12, F]`` chroma filterbank: bin -> pitch class by a Gaussian of ``width`` semitones around each
    pitch class (circular), only bins between ``low_hz`` and ``high_hz``. Pitch class 0 is C."""
    freqs = fft_freqs(n_fft, sample_rate).double()
    midi = 69.0 + 12.0 * torch.log2(freqs.clamp(min=1.0) / 440.0)  # [F]
    distance = (midi[None, :] - torch.arange(12, dtype=torch.float64)[:, None] + 6.0) % 12.0 - 6.0  # [12, F]
    bank = torch.exp(-0.5 * (distance / width) ** 2) * ((freqs >= low_hz) & (freqs <= high_hz))[None, :]
    return bank.float()


def spectral_centroid(power: torch.Tensor, n_fft: int = N_FFT) -> torch.Tensor:
    """``[T]`` centroid in Hz of each frame of a ``[F, T]`` power spectrogram (magnitude weighted)."""
    magnitude = power.sqrt()
    return (fft_freqs(n_fft)[:, None] * magnitude).sum(0) / (magnitude.sum(0) + EPS)


def spectral_flatness(power: torch.Tensor) -> torch.Tensor:
    """``[T]`` Wiener entropy (geometric / arithmetic mean of the power spectrum) of each frame, in (0, 1]."""
    power = power + EPS
    return torch.exp(torch.log(power).mean(0)) / power.mean(0)


def frame_db(wav: torch.Tensor, hop: int = HOP, window: int = 2 * HOP) -> torch.Tensor:
    """``[T]`` RMS level in dBFS of centred frames (T = N // hop + 1, aligned with the STFT frames)."""
    padded = torch.nn.functional.pad(wav, (window // 2, window // 2 + hop))
    frames = padded.unfold(0, window, hop)[: wav.shape[0] // hop + 1]  # [T, window]
    return 10.0 * torch.log10(frames.square().mean(1) + EPS)

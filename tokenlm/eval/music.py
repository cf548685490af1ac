"""Detectors that judge music: key and mode, tempo, and how closely a clip follows a reference melody.

- **Key and mode**: a chromagram of the tonal peaks of the long STFT (55-2000 Hz; broadband drum energy removed by
  subtracting twice the local spectral floor), summed over the clip, square-rooted, correlated with the 24 rotated
  Albrecht-Shanahan key profiles spread over four harmonics.
- **Tempo**: the onset envelope (magnitude and level-independent spectral flux of the mel spectrogram) scored at
  each beat period by its autocorrelation at one to four periods (the first counting double), under a log-normal
  tempo prior (113 bpm, 0.7 octave), then refined on the onset times. The music set draws tempos within one
  octave (80-159 bpm), so a clip's beat is not ambiguous by a factor of two.
- **Melody similarity**: per 20 ms frame, the chroma of the clip against the one-hot chroma of the melody's notes
  (MusicGen-Melody's argmax chroma, in reverse), best over the 12 transpositions; 1 is a frame-perfect match.

Example::

    analysis = analyze_music(wav, 16000)
    analysis.key, analysis.tempo_bpm
    melody_similarity(wav, 16000, [[0.0, 0.5, 67], [0.5, 1.0, 69]])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tokenlm.data.synth.music import detect_key
from tokenlm.eval import dsp
from tokenlm.eval.harmony import HARMONIC_DECAY, HARMONICS
from tokenlm.eval.rhythm import (
    BPM_RANGE,
    FRAME_RATE,
    _autocorrelation,
    _refine_period,
    flux_db,
    onset_strength,
    pick_onsets,
)

#: Albrecht & Shanahan (2013) key profiles (note-duration distributions of a corpus of major / minor pieces),
#: tonic first; on the music set's FluidR3 validation split they find the key more often than Krumhansl-Kessler's
ALBRECHT_SHANAHAN_PROFILES = {
    "major": (0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
    "minor": (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052),
}
#: the band whose tonal peaks make the key chroma (Hz)
KEY_BAND = (55.0, 2000.0)
#: the tempo prior: log-normal around this bpm with this spread in octaves
TEMPO_PRIOR_BPM = 113.0
TEMPO_PRIOR_OCTAVES = 0.7
#: weights of the autocorrelation at 1, 2, 3, 4 beat periods in a period's score (a beat recurs every beat, half
#: bar and bar; the beat itself counts double)
TEMPO_HARMONIC_WEIGHTS = (2.0, 1.0, 1.0, 1.0)
TEMPO_HARMONICS = len(TEMPO_HARMONIC_WEIGHTS)
#: chroma frames per second for melody similarity
MELODY_FRAME_RATE = 50.0


@dataclass
class MusicAnalysis:
    """What the music detectors found in one clip."""

    key: str | None
    key_score: float
    tempo_bpm: float | None
    chroma: torch.Tensor  # [12, T] frame chroma at MELODY_FRAME_RATE


@functools.lru_cache(maxsize=2)
def _melody_chroma_matrix(n_fft: int) -> torch.Tensor:
    return dsp.chroma_matrix(n_fft, dsp.ANALYSIS_RATE, 80.0, 2000.0, 0.4)


@functools.lru_cache(maxsize=1)
def harmonic_key_profiles() -> dict[str, torch.Tensor]:
    """The Albrecht-Shanahan key profiles as a spectrum would show them: each pitch class of the profile adds its
    first :data:`~tokenlm.eval.harmony.HARMONICS` harmonics (weights 0.6^(k-1)) at their pitch classes, so that the
    third harmonic of the tonic (the fifth) does not pull the key a fifth up."""
    out = {}
    for mode, profile in ALBRECHT_SHANAHAN_PROFILES.items():
        spread = torch.zeros(12)
        for pitch_class, weight in enumerate(profile):
            for k in range(1, HARMONICS + 1):
                spread[(pitch_class + round(12 * math.log2(k))) % 12] += weight * HARMONIC_DECAY ** (k - 1)
        out[mode] = spread
    return out


def detect_key_spectral(chroma: torch.Tensor) -> tuple[str, float]:
    """The key whose harmonic-spread profile (:func:`harmonic_key_profiles`) correlates best with the square root
    of a ``[12]`` spectral chroma (compressed, so one loud held note does not decide the key), and the
    correlation."""
    return detect_key(chroma.clamp(min=0.0).sqrt(), harmonic_key_profiles())


def harmonic_chroma(x: torch.Tensor) -> torch.Tensor:
    """``[12]`` chroma of the pitched part of a clip at :data:`dsp.ANALYSIS_RATE`: long-STFT magnitudes with
    broadband (percussive) energy removed by subtracting a median over frequency, mapped to pitch classes and
    summed over the clip's active frames."""
    power = dsp.stft_power(x, dsp.LONG_FFT, dsp.LONG_HOP)  # [F, T]
    magnitude = power.sqrt()
    floor = torch.nn.functional.avg_pool1d(magnitude.T[:, None, :], 31, 1, 15, count_include_pad=False)[:, 0, :].T
    peaks = (magnitude - 2.0 * floor).clamp(min=0.0)  # [F, T] tonal peaks above the local spectral floor
    level = 10.0 * torch.log10(power.sum(0) + dsp.EPS)
    active = level > level.max() - 30.0
    chroma = dsp.chroma_matrix(dsp.LONG_FFT, dsp.ANALYSIS_RATE, *KEY_BAND) @ peaks[:, active]  # [12, T']
    return chroma.sum(1)


def estimate_tempo_prior(envelope: torch.Tensor, onsets: torch.Tensor) -> float | None:
    """Tempo in bpm from an onset envelope at :data:`FRAME_RATE`. Each beat period between 40 and 240 bpm is scored
    by the envelope's autocorrelation at one to :data:`TEMPO_HARMONICS` periods (a beat recurs every beat, half bar
    and bar), weighed by a log-normal prior around :data:`TEMPO_PRIOR_BPM` (:data:`TEMPO_PRIOR_OCTAVES` octaves);
    the best period is refined by a least-squares fit of the onsets on its grid."""
    low_lag = int(FRAME_RATE * 60.0 / BPM_RANGE[1])
    high_lag = min(int(FRAME_RATE * 60.0 / BPM_RANGE[0]), envelope.numel() // (TEMPO_HARMONICS + 1))
    if high_lag <= low_lag + 2 or onsets.numel() < 3:
        return None
    acf = _autocorrelation(envelope, TEMPO_HARMONICS * high_lag + TEMPO_HARMONICS)
    lags = torch.arange(low_lag, high_lag + 1)
    support = torch.zeros(lags.numel())
    for k, weight in enumerate(TEMPO_HARMONIC_WEIGHTS, start=1):
        centre = k * lags
        window = [centre + d for d in range(-(k // 2), k // 2 + 1)]  # +-k/2 frames: the period's error grows with k
        peak = torch.stack([acf[w.clamp(0, acf.numel() - 1)] for w in window]).max(0).values
        support += weight * peak.clamp(min=0.0)
    bpm = 60.0 * FRAME_RATE / lags.double()
    prior = torch.exp(-0.5 * (torch.log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2).float()
    lag = int(lags[int((support * prior).argmax())])
    left, mid, right = float(acf[lag - 1]), float(acf[lag]), float(acf[lag + 1])
    curvature = left - 2 * mid + right
    period = lag + (0.5 * (left - right) / curvature if abs(curvature) > 1e-9 else 0.0)
    return 60.0 * FRAME_RATE / _refine_period(onsets, period)


def frame_chroma(x: torch.Tensor, frame_rate: float = MELODY_FRAME_RATE) -> torch.Tensor:
    """``[12, T]`` unit-norm chroma per frame (2048-point STFT, hop 1 / ``frame_rate`` s) of a clip at the
    analysis rate; silent frames are zero."""
    hop = int(round(dsp.ANALYSIS_RATE / frame_rate))
    power = dsp.stft_power(x, 2048, hop)
    chroma = _melody_chroma_matrix(2048) @ power.sqrt()  # [12, T]
    norm = chroma.norm(dim=0, keepdim=True)
    level = 10.0 * torch.log10(power.sum(0) + dsp.EPS)
    chroma = chroma / norm.clamp(min=1e-9)
    return chroma * (level > level.max() - 40.0)[None, :]


def analyze_music(wav: np.ndarray | torch.Tensor, sample_rate: int) -> MusicAnalysis:
    """Key, tempo and frame chroma of one clip (``[N]`` or ``[C, N]``)."""
    x = dsp.to_analysis_rate(wav, sample_rate)
    key, score = detect_key_spectral(harmonic_chroma(x))
    mel_power = dsp.mel_matrix() @ dsp.stft_power(x)
    # magnitude flux (strong hits, as a listener hears the beat) and level-independent flux (soft note changes)
    envelope = 0.5 * (onset_strength(mel_power) + flux_db(mel_power))
    tempo = estimate_tempo_prior(envelope, pick_onsets(envelope))
    return MusicAnalysis(key, score, tempo, frame_chroma(x))


def melody_roll(notes: Sequence[Sequence[float]], frames: int, frame_rate: float = MELODY_FRAME_RATE) -> torch.Tensor:
    """``[12, frames]`` one-hot pitch class of the melody sounding in each frame (zero where it rests);
    ``notes`` are ``[start_s, end_s, midi]``."""
    roll = torch.zeros(12, frames)
    for start, end, pitch in notes:
        a, b = int(round(float(start) * frame_rate)), int(round(float(end) * frame_rate))
        if b > a and a < frames:
            roll[int(pitch) % 12, a:min(b, frames)] = 1.0
    return roll


def chroma_similarity(chroma: torch.Tensor, reference: torch.Tensor, transpose: bool = True) -> float:
    """Mean over the frames where both sound of the cosine between ``chroma`` and ``reference`` (``[12, T]`` each,
    cut to the shorter), best over the 12 circular transpositions of ``reference`` when ``transpose``."""
    frames = min(chroma.shape[1], reference.shape[1])
    a, b = chroma[:, :frames], reference[:, :frames]
    both = (a.norm(dim=0) > 0) & (b.norm(dim=0) > 0)
    if not both.any():
        return 0.0
    a = a[:, both] / a[:, both].norm(dim=0, keepdim=True)
    b = b[:, both] / b[:, both].norm(dim=0, keepdim=True)
    shifts = range(12) if transpose else (0,)
    return max(float((a * torch.roll(b, s, dims=0)).sum(0).mean()) for s in shifts)


def melody_similarity(wav: np.ndarray | torch.Tensor, sample_rate: int, melody: Sequence[Sequence[float]] | None = None,
                      reference_wav: np.ndarray | torch.Tensor | None = None, reference_rate: int | None = None,
                      transpose: bool = True) -> float:
    """How closely a clip follows a melody given as notes (``[[start_s, end_s, midi], ...]``) or as reference
    audio: :func:`chroma_similarity` of their frame chroma (argmax one-hot for the reference audio, as
    MusicGen-Melody conditions on it). Transposition-aware by default."""
    chroma = frame_chroma(dsp.to_analysis_rate(wav, sample_rate))
    if melody is not None:
        reference = melody_roll(melody, chroma.shape[1])
    elif reference_wav is not None:
        ref = frame_chroma(dsp.to_analysis_rate(reference_wav, reference_rate or sample_rate))
        reference = torch.nn.functional.one_hot(ref.argmax(0), 12).T.float() * (ref.norm(dim=0) > 0)[None, :]
    else:
        raise ValueError("melody_similarity needs the melody as notes (melody=) or as audio (reference_wav=)")
    return chroma_similarity(chroma, reference, transpose)


def key_matches(expected: str, detected: str | None) -> bool:
    """Exact key and mode ("D major" == "D major"); flat spellings are normalised."""
    if detected is None:
        return False
    from tokenlm.data.synth.music import parse_pitch_class

    def norm(text: str) -> tuple[int, str]:
        tonic, mode = text.split()
        return parse_pitch_class(tonic), mode.lower()

    return norm(expected) == norm(detected)


def tempo_matches(expected: float, detected: float | None, tolerance: float = 0.04) -> bool:
    """Within ``tolerance`` of the expected bpm (an octave error is a miss)."""
    return (detected is not None and math.isfinite(detected)
            and abs(detected / float(expected) - 1.0) <= tolerance + 1e-9)

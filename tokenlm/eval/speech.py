"""Speech detectors from signal features: is there speech (:func:`speech_presence`), and is the voice high or low
(:func:`voice_pitch`).

Speech is found as voiced stretches whose pitch moves the way a voice's does. A YIN pitch track (``pitch.yin``,
permissive threshold :data:`YIN_THRESHOLD`) splits the clip's audible frames into voiced runs; a run is
*speech-like* when all of these hold:

- it lasts 50 ms to 1.5 s (:data:`RUN_FRAMES`): a syllable or a few, not a held note;
- its median f0 is a speaking voice's, 65-350 Hz (:data:`VOICE_F0_HZ`);
- its pitch moves: the median frame-to-frame change is 0.015-0.6 semitones per 10 ms (:data:`STEP_ST`) and the
  10th-90th percentile range is 0.2-16 semitones (:data:`RANGE_ST`); a steady tone or a sampled instrument note
  has (almost) none, a sequence of beeps jumps;
- it is not percussive: its level rises at least 3 dB after voicing starts, or peaks after its first 15%
  (:data:`RISE_DB`, :data:`PEAK_POSITION`), where a struck drum peaks at once and decays;
- its level is not steady (standard deviation >= 1 dB, :data:`LEVEL_STD_DB`) and its pitch is not a constant-rate
  glide (:data:`GLIDE_MONOTONY`: a synthetic sweep moves in one direction every frame, a voice wavers).

The score is the fraction of audible frames inside speech-like runs; speech is present when the score is at least
:data:`SPEECH_SCORE` and the runs add up to at least :data:`MIN_SPEECH_S`.

Calibration: the thresholds were set on espeak-ng renders (``tokenlm data speech``) against the synthetic lab
clips of ``tokenlm.data.synth`` (tones, noise, bursts, clicks, sweeps, sequences, chords, melodies, drums), then
checked, unchanged, on real recordings: Allison Smith's Asterisk prompts (speech present), LMMS instrument samples
and Hydrogen drum hits (speech absent). ``scripts/validate_speech_detectors.py`` measures them.

Voice pitch is the median f0 of the speech-like runs (of every voiced frame when there are none), "high" at or
above :data:`VOICE_PITCH_BOUNDARY_HZ` = 165 Hz, the usual divide between typical adult female (~165-255 Hz) and
male (~85-155 Hz) speaking voices; ``tokenlm data speech`` labels its clips against the same boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tokenlm.data.sources.speech import VOICE_PITCH_BOUNDARY_HZ
from tokenlm.eval.dsp import ANALYSIS_RATE, HOP, frame_db, to_analysis_rate
from tokenlm.eval.pitch import yin

__all__ = ["SPEECH_SCORE", "VOICE_PITCH_BOUNDARY_HZ", "SpeechAnalysis", "analyze_speech", "speech_presence",
           "voice_pitch"]

FRAME_S = HOP / ANALYSIS_RATE  # 10 ms
YIN_THRESHOLD = 0.4  # espeak-ng's breathy female and low male voices sit at 0.2-0.4 aperiodicity
YIN_RANGE_HZ = (60.0, 500.0)
AUDIBLE_DB = 35.0  # frames more than this below the loudest are ignored
RUN_FRAMES = (5, 150)
VOICE_F0_HZ = (65.0, 350.0)
STEP_ST = (0.015, 0.6)
RANGE_ST = (0.2, 16.0)
RISE_DB = 3.0
PEAK_POSITION = 0.15
LEVEL_STD_DB = 1.0
GLIDE_MONOTONY = 0.98
SPEECH_SCORE = 0.1
MIN_SPEECH_S = 0.1
SILENCE_PEAK = 1e-4


@dataclass
class SpeechAnalysis:
    """What the speech detectors measured on one clip.

    Attributes:
        score: fraction of audible frames inside speech-like voiced runs, in [0, 1].
        speech_seconds: total length of the speech-like runs.
        present: ``score >= SPEECH_SCORE`` and ``speech_seconds >= MIN_SPEECH_S``.
        median_f0_hz: median f0 of the speech-like runs (of all voiced frames when none; NaN when unvoiced).
    """

    score: float
    speech_seconds: float
    present: bool
    median_f0_hz: float


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in ``mask``."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _speech_like(semitones: np.ndarray, f0: np.ndarray, level: np.ndarray) -> bool:
    """Whether one voiced run (``[n]`` pitch in semitones, f0 in Hz, level in dB) moves like a voice."""
    n = semitones.size
    if not RUN_FRAMES[0] <= n <= RUN_FRAMES[1]:
        return False
    steps = np.diff(semitones)  # [n - 1]
    size = np.abs(steps)
    spread = float(np.quantile(semitones, 0.9) - np.quantile(semitones, 0.1))
    if not (VOICE_F0_HZ[0] <= float(np.median(f0)) <= VOICE_F0_HZ[1] and STEP_ST[0] <= float(np.median(size))
            <= STEP_ST[1] and RANGE_ST[0] <= spread <= RANGE_ST[1]):
        return False
    peak = int(np.argmax(level))
    if level[peak] - level[0] < RISE_DB and peak / n < PEAK_POSITION:
        return False  # struck: loudest as soon as it sounds
    if float(np.std(level)) < LEVEL_STD_DB:
        return False  # steady level
    small = steps[size < 1.0]  # octave errors and jumps left out
    monotony = abs(float(small.mean())) / (float(np.abs(small).mean()) + 1e-9) if small.size else 1.0
    return monotony <= GLIDE_MONOTONY


def analyze_speech(wav: np.ndarray | torch.Tensor, sample_rate: int) -> SpeechAnalysis:
    """Run the speech detectors on ``wav`` (``[N]`` or ``[C, N]``) at ``sample_rate``."""
    x = to_analysis_rate(wav, sample_rate)  # [N'] at 16 kHz
    if x.numel() == 0 or float(x.abs().max()) < SILENCE_PEAK:
        return SpeechAnalysis(0.0, 0.0, False, math.nan)
    level_t = frame_db(x)  # [T]
    track = yin(x, level_t, threshold=YIN_THRESHOLD, fmin=YIN_RANGE_HZ[0], fmax=YIN_RANGE_HZ[1],
                silence_db=AUDIBLE_DB)
    level = level_t.numpy().astype(np.float64)  # [T]
    f0 = track.f0.numpy().astype(np.float64)  # [T]
    audible = level > level.max() - AUDIBLE_DB  # [T]
    voiced = track.voiced.numpy() & audible  # [T]
    semitones = 12.0 * np.log2(np.maximum(f0, 1.0) / 100.0)  # [T]
    speech = np.zeros_like(voiced)  # [T]
    for start, stop in _runs(voiced):
        if _speech_like(semitones[start:stop], f0[start:stop], level[start:stop]):
            speech[start:stop] = True
    frames = int(speech.sum())
    score = frames / max(1, int(audible.sum()))
    pitched = speech if frames else voiced
    median_f0 = float(np.median(f0[pitched])) if pitched.any() else math.nan
    seconds = frames * FRAME_S
    return SpeechAnalysis(round(score, 4), round(seconds, 2), score >= SPEECH_SCORE and seconds >= MIN_SPEECH_S,
                          median_f0)


def speech_presence(wav: np.ndarray | torch.Tensor, sample_rate: int) -> tuple[bool, float]:
    """``(speech present, score)`` for ``wav`` (``[N]`` or ``[C, N]``); the score is in [0, 1] (see the module)."""
    analysis = analyze_speech(wav, sample_rate)
    return analysis.present, analysis.score


def voice_pitch(wav: np.ndarray | torch.Tensor, sample_rate: int) -> tuple[float, str | None]:
    """``(median f0 in Hz, "high" or "low")`` of the voice in ``wav``, split at :data:`VOICE_PITCH_BOUNDARY_HZ`;
    ``(nan, None)`` when nothing is voiced."""
    f0 = analyze_speech(wav, sample_rate).median_f0_hz
    if math.isnan(f0):
        return f0, None
    return f0, "high" if f0 >= VOICE_PITCH_BOUNDARY_HZ else "low"

"""Run every detector once on a clip: :func:`analyze` returns an :class:`Analysis` from which each caption
attribute is checked cheaply (so shuffled-caption baselines cost nothing extra)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyloudnorm
import torch

from tokenlm.eval import dsp
from tokenlm.eval.events import Segment, band_rise_db, classify_event, decay_db, pitch_slope, segment_events
from tokenlm.eval.features import clip_features
from tokenlm.eval.harmony import detect_chord, detect_key, pitch_class_histogram
from tokenlm.eval.pitch import yin
from tokenlm.eval.rhythm import estimate_tempo, flux_db, merge_onsets, onset_strength, pick_onsets
from tokenlm.eval.spectral import (
    band_fractions,
    band_from_fractions,
    colour_from_slope,
    harmonic_ratios,
    psd_slope,
    waveform_from_ratios,
)

MIN_DURATION_S = 0.25
SILENCE_PEAK = 1e-4  # -80 dBFS
CLIP_LEVEL = 0.999
CLIP_FRACTION = 1e-3
DRUM_BANDS = {"kick": (30.0, 150.0), "snare": (1000.0, 4000.0), "hihat": (6000.0, 8000.0)}


@dataclass
class Analysis:
    """Detector outputs for one clip. ``problems`` is non-empty for unusable audio (then every detection is
    None and every attribute check is a miss that names the problem)."""

    duration_s: float
    problems: list[str] = field(default_factory=list)
    lufs: float | None = None
    f0_hz: float | None = None
    voiced_fraction: float = 0.0
    pitch_slope: float | None = None
    waveform: str | None = None
    decay_db: float | None = None
    noise_slope: float | None = None
    noise_colour: str | None = None
    noise_band: str | None = None
    chord: str | None = None
    key: str | None = None
    tempo_bpm: float | None = None
    count: int | None = None
    order: list[str] | None = None
    drums: list[str] | None = None
    # the music, speech and recording detectors (None unless analysed with extended=True)
    music_key: str | None = None
    music_tempo_bpm: float | None = None
    instrument_family: str | None = None
    has_drums: bool | None = None
    speech: bool | None = None
    voice_pitch: str | None = None
    features: np.ndarray | None = field(default=None, repr=False)

    def detections(self) -> dict[str, object]:
        """The detected values by name (for reports)."""
        names = ("lufs", "f0_hz", "voiced_fraction", "pitch_slope", "waveform", "decay_db", "noise_slope",
                 "noise_colour", "noise_band", "chord", "key", "tempo_bpm", "count", "order", "drums", "music_key",
                 "music_tempo_bpm", "instrument_family", "has_drums", "speech", "voice_pitch")
        out = {}
        for name in names:
            value = getattr(self, name)
            out[name] = round(value, 3) if isinstance(value, float) and math.isfinite(value) else value
        return out


def audio_problems(wav: np.ndarray, sample_rate: int) -> list[str]:
    """Reasons why ``wav`` cannot be scored: non-finite samples, too short, silent or clipped."""
    problems = []
    if wav.size == 0 or wav.shape[-1] / sample_rate < MIN_DURATION_S:
        return [f"too short: {wav.shape[-1] / sample_rate:.3f} s < {MIN_DURATION_S} s"]
    if not np.isfinite(wav).all():
        return [f"contains NaN or infinite values ({int((~np.isfinite(wav)).sum())} samples)"]
    peak = float(np.abs(wav).max())
    if peak < SILENCE_PEAK:
        problems.append(f"silent: peak {peak:.2e} < {SILENCE_PEAK:.0e}")
    clipped = float((np.abs(wav) >= CLIP_LEVEL).mean())
    if clipped > CLIP_FRACTION:
        problems.append(f"clipped: {100 * clipped:.2f}% of samples at full scale")
    return problems


def measure_lufs(wav: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, pyloudnorm) of mono ``[N]`` audio; clips shorter than one 400 ms
    gating block are padded with silence."""
    block = int(0.4 * sample_rate) + 1
    if wav.shape[-1] < block:
        wav = np.pad(wav, (0, block - wav.shape[-1]))
    with np.errstate(divide="ignore"):
        return float(pyloudnorm.Meter(sample_rate).integrated_loudness(wav.astype(np.float64)))


def _band_db(power: torch.Tensor, band: tuple[float, float]) -> torch.Tensor:
    freqs = dsp.fft_freqs(dsp.N_FFT)
    rows = (freqs >= band[0]) & (freqs <= band[1])
    return 10.0 * torch.log10(power[rows].sum(0) + dsp.EPS)


def detect_drums(power: torch.Tensor, onsets: torch.Tensor) -> list[str]:
    """Instruments heard at the onsets: kick (rise below 150 Hz), snare (rise at 1-4 kHz comparable to the
    rise above 6 kHz), hi-hat (a rise above 6 kHz with little at 1-4 kHz); each needs two hits."""
    if onsets.numel() == 0:
        return []
    rises = {name: 10.0 ** (band_rise_db(_band_db(power, band), onsets) / 10.0) for name, band in DRUM_BANDS.items()}
    levels = {name: 10.0 ** (_band_db(power, band) / 10.0) for name, band in DRUM_BANDS.items()}
    gains = {}
    for name in DRUM_BANDS:  # linear power gained at each onset
        index = onsets.round().long().clamp(max=levels[name].numel() - 1)
        gains[name] = levels[name][index.clamp(min=0)] * (1.0 - 1.0 / rises[name].clamp(min=1.0))
    found = []
    kick = (rises["kick"] > 4.0) & (gains["kick"] > 0.1 * float(gains["kick"].max()))
    ratio = gains["snare"] / (gains["hihat"] + 1e-12)
    high = gains["hihat"] > 0.005 * float(gains["hihat"].max())
    snare = (rises["snare"] > 4.0) & (ratio > 0.5) & (gains["snare"] > 0.1 * float(gains["snare"].max()))
    hihat = high & (rises["hihat"] > 2.0) & (ratio < 0.2)
    for name, hits in (("kick", kick), ("snare", snare), ("hihat", hihat)):
        if int(hits.sum()) >= 2:
            found.append(name)
    return found


def analyze(wav: np.ndarray | torch.Tensor, sample_rate: int, extended: bool = False) -> Analysis:
    """Run every detector on one clip (``[N]`` or ``[C, N]``, any sample rate; analysed at 16 kHz mono).
    ``extended`` adds the music detectors (key, tempo, instrument family, drums), speech presence and voice pitch,
    which the music, speech and recorded families need (:func:`analyze_extended`)."""
    array = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    array = array.astype(np.float32)
    if array.ndim > 1:
        array = array.reshape(-1, array.shape[-1]).mean(0)
    duration = array.shape[-1] / sample_rate
    problems = audio_problems(array, sample_rate)
    if problems:
        return Analysis(duration_s=duration, problems=problems)
    result = Analysis(duration_s=duration, lufs=measure_lufs(array, sample_rate))
    x = dsp.to_analysis_rate(array, sample_rate)
    level = dsp.frame_db(x)  # [T]
    power = dsp.stft_power(x)  # [F, T]
    count = min(level.numel(), power.shape[1])
    level, power = level[:count], power[:, :count]
    track = yin(x, level)
    f0, voiced = track.f0[:count], track.voiced[:count]
    centroid = dsp.spectral_centroid(power)
    mel_power = dsp.mel_matrix() @ power  # [n_mels, T]

    segments = segment_events(level)
    active = torch.zeros(count, dtype=torch.bool)
    for segment in segments:
        active[segment.start:segment.stop] = True
    if not active.any():
        active[:] = True
    result.voiced_fraction = float(voiced[active].float().mean())
    if voiced.sum() >= 3:
        pitches = f0[voiced]
        result.f0_hz = float(pitches.median())
        result.pitch_slope = pitch_slope(pitches, torch.nonzero(voiced).flatten().float() * dsp.HOP / dsp.ANALYSIS_RATE)

    long_power = dsp.stft_power(x, dsp.LONG_FFT, dsp.LONG_HOP)  # [F', T']
    long_level = 10.0 * torch.log10(long_power.sum(0) + dsp.EPS)
    long_active = long_level > long_level.max() - 30.0
    mean_long = long_power[:, long_active].mean(1)  # [F']
    if result.f0_hz is not None:
        result.waveform = waveform_from_ratios(harmonic_ratios(mean_long, dsp.LONG_FFT, result.f0_hz))
    chroma = dsp.chroma_matrix() @ long_power[:, long_active].sqrt()  # [12, T']
    chroma_mean = chroma.mean(1)
    result.chord, _ = detect_chord(chroma_mean)
    monophonic = result.voiced_fraction >= 0.3 and int(voiced.sum()) >= 3
    result.key, _ = detect_key(pitch_class_histogram(f0[voiced]) if monophonic else chroma_mean)

    mean_power = power[:, active].mean(1)
    result.noise_slope = psd_slope(mean_power, dsp.N_FFT)
    result.noise_colour = colour_from_slope(result.noise_slope)
    result.noise_band = band_from_fractions(*band_fractions(mean_power, dsp.N_FFT))
    result.decay_db = decay_db(level)

    envelope = onset_strength(mel_power)
    onsets = pick_onsets(envelope)
    result.tempo_bpm = estimate_tempo(envelope, onsets)
    result.drums = detect_drums(power, merge_onsets(onsets, pick_onsets(flux_db(mel_power))))
    result.count = len(segments)
    result.order = _event_order(segments, f0, voiced, centroid)
    result.features = clip_features(power, mel_power, chroma)
    if extended:
        analyze_extended(array, sample_rate, result)
    return result


def analyze_extended(wav: np.ndarray, sample_rate: int, result: Analysis) -> Analysis:
    """Fill ``result``'s music, instrument, drums, speech and voice-pitch detections from mono ``wav``."""
    from tokenlm.eval.instrument import shipped_detector
    from tokenlm.eval.music import analyze_music
    from tokenlm.eval.speech import VOICE_PITCH_BOUNDARY_HZ, analyze_speech

    music = analyze_music(wav, sample_rate)
    result.music_key, result.music_tempo_bpm = music.key, music.tempo_bpm
    instruments = shipped_detector().detect(wav, sample_rate)
    result.instrument_family, result.has_drums = instruments.family, instruments.drums
    speech = analyze_speech(wav, sample_rate)
    result.speech = speech.present
    if speech.present and math.isfinite(speech.median_f0_hz):
        result.voice_pitch = "high" if speech.median_f0_hz >= VOICE_PITCH_BOUNDARY_HZ else "low"
    return result


def _event_order(segments: list[Segment], f0: torch.Tensor, voiced: torch.Tensor, centroid: torch.Tensor) -> list[str]:
    """Classes of the two longest events, in time order (fewer when there are fewer events)."""
    longest = sorted(sorted(segments, key=lambda s: s.stop - s.start, reverse=True)[:2], key=lambda s: s.start)
    return [classify_event(segment, f0, voiced, centroid) for segment in longest]

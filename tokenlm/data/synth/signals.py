"""Signal building blocks for the synthetic data set: band-limited oscillators, envelopes, coloured and
band-passed noise, drum hits and loudness normalisation. Everything is float64 NumPy, mono, ``[N]``."""

from __future__ import annotations

import numpy as np
import pyloudnorm

#: waveforms the oscillators can make
WAVEFORMS = ("sine", "square", "sawtooth", "triangle")
#: noise colours: power spectral density slope in dB per octave is 0, -3 and -6
NOISE_COLOURS = ("white", "pink", "brown")
#: the highest harmonic kept, as a fraction of the sample rate (below Nyquist, so nothing aliases)
MAX_HARMONIC_FRACTION = 0.45
PEAK_LIMIT = 0.95


def harmonic_amplitudes(waveform: str, count: int) -> np.ndarray:
    """Fourier sine-series amplitudes of harmonics 1..``count`` of a unit-amplitude ``waveform``."""
    if waveform not in WAVEFORMS:
        raise ValueError(f"unknown waveform {waveform!r}; allowed: {list(WAVEFORMS)}")
    k = np.arange(1, count + 1, dtype=np.float64)
    odd = (k % 2) == 1
    if waveform == "sine":
        return (k == 1).astype(np.float64)
    if waveform == "square":
        return np.where(odd, 4.0 / (np.pi * k), 0.0)
    if waveform == "sawtooth":
        return 2.0 / np.pi * (-1.0) ** (k + 1) / k
    sign = np.where((k - 1) % 4 == 0, 1.0, -1.0)
    return np.where(odd, 8.0 / np.pi**2 * sign / k**2, 0.0)  # triangle


def oscillator(frequency: float | np.ndarray, waveform: str, sample_rate: int, num_samples: int,
               max_harmonics: int = 40) -> np.ndarray:
    """A band-limited ``waveform`` at ``frequency`` Hz (a number, or one value per sample for glides).

    Harmonics are summed additively and each is dropped where it would exceed 0.45 x the sample rate.
    """
    freq = np.broadcast_to(np.asarray(frequency, dtype=np.float64), (num_samples,))
    if np.any(freq <= 0):
        raise ValueError(f"oscillator frequency must be > 0 Hz, got minimum {float(freq.min())}")
    phase = 2.0 * np.pi * np.cumsum(freq) / sample_rate  # [N]
    amplitudes = harmonic_amplitudes(waveform, max_harmonics)
    limit = MAX_HARMONIC_FRACTION * sample_rate
    out = np.zeros(num_samples)
    for k, amplitude in enumerate(amplitudes, start=1):
        if amplitude == 0.0:
            continue
        audible = k * freq < limit  # [N]
        if not audible.any():
            break
        out += amplitude * np.sin(k * phase) * audible
    return out


def envelope(num_samples: int, sample_rate: int, kind: str, decay_s: float = 0.3) -> np.ndarray:
    """An amplitude envelope: ``"sustained"`` (10 ms attack, 40 ms release) or ``"plucked"`` (3 ms attack,
    exponential decay with time constant ``decay_s``, 10 ms fade at the end)."""
    t = np.arange(num_samples) / sample_rate
    if kind == "sustained":
        attack, release = 0.01, 0.04
        env = np.minimum(1.0, t / attack)
        return env * np.clip((num_samples / sample_rate - t) / release, 0.0, 1.0)
    if kind == "plucked":
        env = np.minimum(1.0, t / 0.003) * np.exp(-t / decay_s)
        return env * np.clip((num_samples / sample_rate - t) / 0.01, 0.0, 1.0)
    raise ValueError(f"unknown envelope {kind!r}; allowed: ['plucked', 'sustained']")


def shape_spectrum(noise: np.ndarray, sample_rate: int, gain) -> np.ndarray:
    """Filter ``noise`` in the frequency domain by ``gain(freqs) -> amplitude gain`` (zero phase)."""
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(noise.shape[-1], 1.0 / sample_rate)
    return np.fft.irfft(spectrum * gain(freqs), n=noise.shape[-1])


def coloured_noise(rng: np.random.Generator, colour: str, num_samples: int, sample_rate: int) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) Gaussian noise with unit standard deviation."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"unknown noise colour {colour!r}; allowed: {list(NOISE_COLOURS)}")
    white = rng.standard_normal(num_samples)
    exponent = NOISE_COLOURS.index(colour) / 2.0  # amplitude ~ f^-exponent
    if exponent:
        white = shape_spectrum(white, sample_rate, lambda f: np.maximum(f, 20.0) ** -exponent)
    return white / (white.std() + 1e-12)


def band_noise(rng: np.random.Generator, band: str, cutoff_hz: float, num_samples: int,
               sample_rate: int) -> np.ndarray:
    """Noise below ``cutoff_hz`` (``band="low"``, a rumble) or above it (``"high"``, a hiss); 4th-order
    Butterworth-like magnitude responses applied in the frequency domain."""
    white = rng.standard_normal(num_samples)
    if band == "low":
        out = shape_spectrum(white, sample_rate, lambda f: 1.0 / np.sqrt(1.0 + (f / cutoff_hz) ** 8))
    elif band == "high":
        out = shape_spectrum(white, sample_rate, lambda f: 1.0 / np.sqrt(1.0 + (cutoff_hz / np.maximum(f, 1.0)) ** 8))
    else:
        raise ValueError(f"unknown noise band {band!r}; allowed: ['high', 'low']")
    return out / (out.std() + 1e-12)


def place(out: np.ndarray, sound: np.ndarray, start_s: float, sample_rate: int) -> None:
    """Add ``sound`` into ``out`` starting at ``start_s`` seconds (cut at the end of ``out``)."""
    start = int(round(start_s * sample_rate))
    stop = min(out.shape[0], start + sound.shape[0])
    if stop > start:
        out[start:stop] += sound[: stop - start]


def kick(sample_rate: int) -> np.ndarray:
    """A synthetic bass drum: a sine gliding 150 -> 50 Hz with a 120 ms decay, 0.35 s long."""
    n = int(0.35 * sample_rate)
    t = np.arange(n) / sample_rate
    freq = 50.0 + 100.0 * np.exp(-t / 0.04)
    return np.sin(2 * np.pi * np.cumsum(freq) / sample_rate) * np.exp(-t / 0.12) * np.minimum(1.0, t / 0.002)


def snare(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A synthetic snare: high-passed noise (80 ms decay) plus a 190 Hz body (50 ms decay), 0.25 s long."""
    n = int(0.25 * sample_rate)
    t = np.arange(n) / sample_rate
    noise = band_noise(rng, "high", 1000.0, n, sample_rate) * np.exp(-t / 0.08)
    body = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.05)
    return (0.7 * noise + 0.5 * body) * np.minimum(1.0, t / 0.001)


def hihat(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A synthetic closed hi-hat: noise above 6 kHz with a 25 ms decay, 0.1 s long."""
    n = int(0.1 * sample_rate)
    t = np.arange(n) / sample_rate
    cutoff = min(6000.0, 0.35 * sample_rate)
    return band_noise(rng, "high", cutoff, n, sample_rate) * np.exp(-t / 0.025)


def click(sample_rate: int, kind: str) -> np.ndarray:
    """A metronome sound: ``"click"`` (2.5 kHz, 4 ms decay), ``"woodblock"`` (900 Hz, 25 ms decay) or
    ``"beep"`` (1 kHz, 60 ms, sustained)."""
    if kind == "click":
        freq, length, decay = 2500.0, 0.03, 0.004
    elif kind == "woodblock":
        freq, length, decay = 900.0, 0.12, 0.025
    elif kind == "beep":
        freq, length, decay = 1000.0, 0.06, None
    else:
        raise ValueError(f"unknown click sound {kind!r}; allowed: ['beep', 'click', 'woodblock']")
    n = int(length * sample_rate)
    t = np.arange(n) / sample_rate
    env = envelope(n, sample_rate, "sustained") if decay is None else np.exp(-t / decay)
    return np.sin(2 * np.pi * freq * t) * env * np.minimum(1.0, t / 0.0005)


def measure_lufs(wav: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, pyloudnorm) in LUFS; ``-inf`` for silence."""
    meter = pyloudnorm.Meter(sample_rate)
    padded = wav if wav.shape[0] >= int(0.4 * sample_rate) else np.pad(wav, (0, int(0.4 * sample_rate)))
    return float(meter.integrated_loudness(padded))


def normalize_loudness(wav: np.ndarray, sample_rate: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """Scale ``wav`` to ``target_lufs``, then down if needed so that the peak stays <= 0.95.

    Returns the scaled waveform and its measured loudness.
    """
    lufs = measure_lufs(wav, sample_rate)
    if not np.isfinite(lufs):
        return wav, lufs
    out = wav * 10.0 ** ((target_lufs - lufs) / 20.0)
    peak = np.abs(out).max()
    if peak > PEAK_LIMIT:
        out = out * (PEAK_LIMIT / peak)
    return out, measure_lufs(out, sample_rate)

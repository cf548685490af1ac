"""Detectors, checked on signals with known answers and on the generator's own clips (the ceiling)."""

from collections import defaultdict

import numpy as np
import pytest
import torch

from tokenlm.data.synth import make_clip
from tokenlm.data.synth.music import TRIADS, midi_to_hz
from tokenlm.data.synth.signals import click, oscillator
from tokenlm.eval import dsp
from tokenlm.eval.analysis import analyze, measure_lufs
from tokenlm.eval.attributes import check, check_clip
from tokenlm.eval.harmony import detect_chord, detect_key, pitch_class_histogram
from tokenlm.eval.pitch import yin

#: minimum accuracy of each attribute on the generator's own clips
CEILING_TARGETS = {"pitch": 0.95, "count": 0.95, "order": 0.95, "tempo": 0.9}
CLIPS_PER_FAMILY = 16
MUSIC = ("chord", "melody", "drums")


@pytest.fixture(scope="module")
def ceiling() -> dict[str, float]:
    """Per-attribute accuracy of the detectors on freshly generated clips of every family."""
    hits = defaultdict(list)
    for family in ("tone", "chord", "melody", "sweep", "noise", "noise_band", "bursts", "clicks", "drums",
                   "sequence"):
        for index in range(CLIPS_PER_FAMILY):
            rng = np.random.default_rng([2024, index])
            wav, rate, _, labels = make_clip(rng, "music32k" if family in MUSIC else "sfx16k", family=family)
            for result in check_clip(labels, analyze(wav, rate)):
                hits[result.attribute].append(result.matched)
    return {name: float(np.mean(values)) for name, values in hits.items()}


def test_detector_ceiling_on_generated_clips(ceiling):
    for name, target in CEILING_TARGETS.items():
        assert ceiling[name] >= target, (name, ceiling[name])
    for name, accuracy in ceiling.items():
        assert accuracy >= 0.9, (name, accuracy)
    assert set(ceiling) == {"pitch", "waveform", "envelope", "loudness", "chord", "key", "direction", "noise_colour",
                            "noise_band", "count", "tempo", "tempo_octave", "order", "drums"}


@pytest.mark.parametrize("waveform", ["sine", "square", "sawtooth", "triangle"])
@pytest.mark.parametrize("hz", [55.0, 196.0, 440.0, 1568.0])
def test_yin_finds_the_pitch_of_every_waveform(waveform, hz):
    x = torch.from_numpy(0.3 * oscillator(hz, waveform, 16000, 16000)).float()
    track = yin(x, dsp.frame_db(x))
    assert track.voiced.float().mean() > 0.9
    cents = 1200 * np.log2(float(track.f0[track.voiced].median()) / hz)
    assert abs(cents) < 15, cents


def test_yin_marks_noise_and_silence_unvoiced():
    noise = torch.from_numpy(np.random.default_rng(0).standard_normal(16000)).float()
    x = torch.cat([noise, torch.zeros(16000)])
    track = yin(x, dsp.frame_db(x))
    assert track.voiced.float().mean() < 0.05


@pytest.mark.parametrize("bpm", [60.0, 97.0, 143.0, 180.0])
def test_tempo_of_a_metronome(bpm):
    wav = np.zeros(5 * 16000)
    for time in np.arange(0.1, 4.9, 60.0 / bpm):
        start = int(time * 16000)
        sound = click(16000, "click")
        wav[start:start + len(sound)] += sound[: len(wav) - start]
    analysis = analyze(wav.astype(np.float32) * 0.5, 16000)
    assert analysis.tempo_bpm == pytest.approx(bpm, rel=0.01)
    assert check("tempo", bpm, analysis).matched
    assert not check("tempo", bpm / 2, analysis).matched and check("tempo_octave", bpm / 2, analysis).matched
    assert not check("tempo_octave", bpm * 1.3, analysis).matched


@pytest.mark.parametrize("root", [0, 4, 9])
@pytest.mark.parametrize("quality", ["major", "minor"])
def test_chord_from_chroma_of_a_synth_triad(root, quality):
    rate = 16000
    wav = sum(oscillator(float(midi_to_hz(48 + root + step)), "sawtooth", rate, 2 * rate, 12)
              for step in TRIADS[quality])
    x = dsp.to_analysis_rate(wav.astype(np.float32), rate)
    chroma = (dsp.chroma_matrix() @ dsp.stft_power(x, dsp.LONG_FFT, dsp.LONG_HOP).sqrt()).mean(1)
    name, score = detect_chord(chroma)
    assert name == f"{['C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B'][root]} {quality}"
    assert score > 0.8


def test_key_from_a_scale_histogram():
    d_minor_scale = midi_to_hz(np.array([62, 64, 65, 67, 69, 70, 72, 62, 65, 69, 62, 62]))
    assert detect_key(pitch_class_histogram(torch.tensor(d_minor_scale)))[0] == "D minor"
    c_major = torch.zeros(12)
    c_major[[0, 2, 4, 5, 7, 9, 11]] = 1.0
    c_major[[0, 4, 7]] += 2.0
    assert detect_key(c_major)[0] == "C major"


def test_lufs_matches_the_bs1770_reference_level():
    rate = 48000
    tone = np.sin(2 * np.pi * 997.0 * np.arange(rate * 2) / rate)
    assert measure_lufs(tone, rate) == pytest.approx(-3.01, abs=0.05)
    assert measure_lufs(0.1 * tone, rate) == pytest.approx(-23.01, abs=0.05)
    assert measure_lufs(tone[: rate // 10], rate) > -10.0  # shorter than a gating block: padded, still measured


def test_noise_band_and_colour_from_analysis():
    rng = np.random.default_rng(1)
    for family, key in (("noise", "noise_colour"), ("noise_band", "noise_band")):
        for _ in range(3):
            wav, rate, _, labels = make_clip(rng, "sfx16k", family=family, duration=2.0)
            assert check(key, labels[key], analyze(wav, rate)).matched


@pytest.mark.parametrize(
    "wav,reason",
    [
        (np.zeros(16000, np.float32), "silent"),
        (np.clip(np.sin(np.arange(16000) / 5.0) * 3, -1, 1).astype(np.float32), "clipped"),
        (np.array([0.1, np.nan] * 8000, np.float32), "NaN"),
        (np.ones(100, np.float32) * 0.1, "too short"),
        (np.zeros(0, np.float32), "too short"),
    ],
)
def test_bad_audio_is_a_miss_with_a_reason(wav, reason):
    analysis = analyze(wav, 16000)
    assert analysis.problems and reason in analysis.problems[0]
    results = check_clip({"family": "tone", "waveform": "sine", "pitch_hz": 440.0, "envelope": "plucked"}, analysis)
    assert len(results) == 3 and not any(r.matched for r in results)
    assert all(reason in r.reason for r in results)


def test_check_rejects_unknown_attributes():
    with pytest.raises(ValueError, match="unknown attribute 'timbre'"):
        check("timbre", "warm", analyze(np.zeros(16000, np.float32), 16000))

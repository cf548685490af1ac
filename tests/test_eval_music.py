"""The music detectors against hand-made references: key and mode of cadences, tempo of pulses, melody similarity
(own melody against another, transposition), the AUC formula, the instrument-family detector's folder round trip
and the validation command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tokenlm.data.sources.music.arrange import DRUM_CHANNEL, KICK, SNARE, Note
from tokenlm.data.sources.music.instruments import MELODY_FAMILIES
from tokenlm.data.sources.music.render import SOUNDFONTS
from tokenlm.eval.music import (
    analyze_music,
    chroma_similarity,
    detect_key_spectral,
    estimate_tempo_prior,
    harmonic_key_profiles,
    key_matches,
    melody_roll,
    melody_similarity,
    tempo_matches,
)
from tokenlm.eval.validate import auc

RATE = 16000
TIMGM = SOUNDFONTS["timgm6mb"][0]
needs_fluidsynth = pytest.mark.skipif(not TIMGM.is_file(), reason="TimGM6mb not installed (apt-get install "
                                      "timgm6mb-soundfont fluidsynth; .ci/run installs both)")


def tone(midi: float, seconds: float, level: float = 0.2, harmonics: int = 5) -> np.ndarray:
    """A harmonic tone (amplitudes 1/k) with a short fade in and out."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    wav = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, harmonics + 1) if k * f0 < RATE / 2)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    return (level * wav * fade).astype(np.float32)


def cadence(tonic: int, mode: str, seconds_per_chord: float = 1.0) -> np.ndarray:
    """I - IV - V - I (minor: i - iv - V - i) as summed harmonic tones, the tonic triad rooted on MIDI ``tonic``."""
    third = 4 if mode == "major" else 3
    chords = [(0, third, 7), (5, 5 + third, 12), (7, 11, 14), (0, third, 7)]
    return np.concatenate([sum(tone(tonic + step, seconds_per_chord) for step in chord) for chord in chords])


@pytest.mark.parametrize(("tonic", "mode", "name"), [(62, "major", "D major"), (59, "minor", "B minor"),
                                                    (63, "major", "D# major"), (65, "minor", "F minor")])
def test_key_of_a_cadence(tonic: int, mode: str, name: str) -> None:
    found = analyze_music(cadence(tonic, mode), RATE)
    assert found.key == name
    assert key_matches(name, found.key) and key_matches("Eb major", "D# major") and not key_matches("D major",
                                                                                                     "B minor")


def test_key_profiles_spread_harmonics_by_hand() -> None:
    profiles = harmonic_key_profiles()
    raw = (0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081)
    # pitch class 7 (G) of C major: its own weight with its 2nd and 4th harmonics (x 0.6, x 0.216), and the 3rd
    # harmonic of C (x 0.36); harmonics 1-4 land 0, 12, 19 and 24 semitones up, so nothing else reaches G
    expected = raw[7] * (1 + 0.6 + 0.216) + raw[0] * 0.36
    assert float(profiles["major"][7]) == pytest.approx(expected, rel=1e-6)
    # a pure tonic-triad chroma in C major is read as C major, and rotated by 3 as D# major
    chroma = torch.zeros(12)
    chroma[[0, 4, 7]] = torch.tensor([1.0, 0.8, 0.9])
    assert detect_key_spectral(chroma)[0] == "C major"
    assert detect_key_spectral(torch.roll(chroma, 3))[0] == "D# major"


def click_track(bpm: float, seconds: float, accent_every: int = 4) -> np.ndarray:
    """Short noise bursts on every beat, louder on each bar's first."""
    wav = np.zeros(int(seconds * RATE), dtype=np.float32)
    rng = np.random.default_rng(0)
    beat = 60.0 / bpm
    for index in range(int(seconds / beat) + 1):
        start = int(index * beat * RATE)
        burst = rng.standard_normal(400).astype(np.float32) * np.exp(-np.arange(400) / 60.0).astype(np.float32)
        level = 0.6 if index % accent_every == 0 else 0.3
        wav[start:start + 400] += level * burst[: len(wav[start:start + 400])]
    return wav


@pytest.mark.parametrize("bpm", [84.0, 100.0, 126.0, 152.0])
def test_tempo_of_a_pulse(bpm: float) -> None:
    found = analyze_music(click_track(bpm, 6.0), RATE)
    assert tempo_matches(bpm, found.tempo_bpm), found.tempo_bpm
    assert not tempo_matches(bpm, 2 * found.tempo_bpm) and not tempo_matches(bpm, None)


def test_tempo_needs_onsets() -> None:
    assert estimate_tempo_prior(torch.zeros(600), torch.zeros(0)) is None
    steady = tone(69, 6.0)
    assert analyze_music(steady, RATE).tempo_bpm is None  # one held tone has no beat


def test_chroma_similarity_by_hand() -> None:
    reference = torch.zeros(12, 4)
    reference[[0, 2, 4, 5], [0, 1, 2, 3]] = 1.0  # C D E F
    chroma = torch.zeros(12, 4)
    chroma[[2, 4, 6, 7], [0, 1, 2, 3]] = 1.0  # D E F# G: the same tune a tone up
    assert chroma_similarity(chroma, reference, transpose=False) == pytest.approx(0.0)
    assert chroma_similarity(chroma, reference) == pytest.approx(1.0)
    half = chroma.clone()
    half[:, 2:] = 0.0
    half[[0, 1], [2, 3]] = 1.0  # only the first two frames match a transposition
    assert chroma_similarity(half, reference) == pytest.approx(0.5)
    assert chroma_similarity(torch.zeros(12, 4), reference) == 0.0
    roll = melody_roll([[0.0, 0.04, 60], [0.04, 0.1, 74]], 6)
    assert roll[0, :2].tolist() == [1.0, 1.0] and roll[2, 2:5].tolist() == [1.0, 1.0, 1.0] and roll[:, 5].sum() == 0


def test_melody_similarity_prefers_the_right_melody() -> None:
    rng = np.random.default_rng(2)
    tunes = [[[0.25 * i, 0.25 * (i + 1), int(60 + rng.choice([0, 2, 4, 5, 7, 9, 11]))] for i in range(16)]
             for _ in range(4)]
    for index, notes in enumerate(tunes):
        wav = np.concatenate([tone(p, e - s) for s, e, p in notes])
        own = melody_similarity(wav, RATE, notes)
        others = [melody_similarity(wav, RATE, other) for j, other in enumerate(tunes) if j != index]
        assert own > 0.6 and own > max(others) + 0.1
        shifted = [[s, e, p + 5] for s, e, p in notes]  # the same tune a fourth up still matches, transposed
        assert melody_similarity(wav, RATE, shifted) == pytest.approx(own, abs=1e-6)
        assert melody_similarity(wav, RATE, shifted, transpose=False) < own - 0.3
    reference = np.concatenate([tone(p, e - s) for s, e, p in tunes[0]])
    assert melody_similarity(reference, RATE, reference_wav=reference, reference_rate=RATE) > 0.6
    with pytest.raises(ValueError, match="melody"):
        melody_similarity(reference, RATE)


def test_auc_by_hand() -> None:
    assert auc([3, 4], [1, 2]) == 1.0 and auc([1], [2]) == 0.0
    assert auc([1, 3], [2, 2]) == pytest.approx(0.5)  # (0 + 1 + 0 + 1) / 4
    assert auc([2], [2]) == 0.5
    with pytest.raises(ValueError, match="positive"):
        auc([], [1.0])


@needs_fluidsynth
def test_rendered_drums_and_key_with_fluidsynth() -> None:
    from tokenlm.data.sources.music.render import render_notes

    beat = 60.0 / 120.0
    notes = [Note(DRUM_CHANNEL, KICK if b % 2 == 0 else SNARE, 110, b * beat, b * beat + 0.1) for b in range(12)]
    for bar, (root, third) in enumerate(((57, 60), (62, 65), (64, 68), (57, 60))):  # A minor: i iv V i
        for pitch in (root, third, root + 7):
            notes.append(Note(0, pitch, 90, bar * 4 * beat / 2 * 1.5, (bar + 1) * 4 * beat / 2 * 1.5 - 0.05))
    wav = render_notes(sorted(notes, key=lambda n: n.start), {0: 0}, 0, TIMGM, RATE, 6.0)
    found = analyze_music(wav, RATE)
    assert found.key == "A minor"
    assert tempo_matches(120.0, found.tempo_bpm), found.tempo_bpm


def test_instrument_detector_round_trip(tmp_path: Path) -> None:
    from tokenlm.eval.instrument import InstrumentDetector, InstrumentNet, log_mel_frames, windows

    torch.manual_seed(0)
    net = InstrumentNet(MELODY_FAMILIES, width=4)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    detector = InstrumentDetector(net, drums_threshold=0.4)
    folder = detector.save_pretrained(tmp_path / "det")
    loaded = InstrumentDetector.from_pretrained(folder)
    wav = tone(69, 3.0)
    assert torch.equal(detector.logits(wav, RATE), loaded.logits(wav, RATE))
    result = loaded.detect(wav, RATE)
    assert result.family in MELODY_FAMILIES and loaded.drums_threshold == 0.4
    assert result.drums == (result.drums_prob >= 0.4)
    assert json.loads((folder / "config.json").read_text())["families"] == list(MELODY_FAMILIES)
    features = log_mel_frames(wav, RATE)
    assert features.shape == (64, 301) and float(features.max()) == pytest.approx(2.0)
    # 301 frames: windows at 0 and 100, then one ending on the last frame
    assert windows(features).shape == (3, 1, 64, 200)
    assert windows(features[:, :50]).shape == (1, 1, 64, 200)
    with pytest.raises(FileNotFoundError, match="config.json"):
        InstrumentDetector.from_pretrained(tmp_path)
    # centred bands: a fixed equaliser (a constant per mel band) changes nothing; without centring it does
    centred = InstrumentNet(MELODY_FAMILIES, width=4, centre_bands=True).eval()
    centred.load_state_dict(net.state_dict())
    x = windows(features)
    tilt = torch.linspace(-0.5, 0.5, 64)[None, None, :, None]
    with torch.no_grad():
        assert torch.allclose(centred(x + tilt), centred(x), atol=1e-5)
        assert not torch.allclose(net.eval()(x + tilt), net(x), atol=1e-3)
    again = InstrumentDetector.from_pretrained(InstrumentDetector(centred).save_pretrained(tmp_path / "c"))
    assert again.net.centre_bands and torch.equal(again.logits(wav, RATE), InstrumentDetector(centred).logits(wav,
                                                                                                              RATE))


def test_warp_bands_moves_the_spectrum_along_the_mel_axis() -> None:
    from tokenlm.eval.instrument_train import warp_bands

    bands = torch.arange(64.0)[None, None, :, None].expand(3, 1, 64, 5)  # band m holds the value m
    # no stretch: each example reads band m from m + d, clamped to the edge bands
    shifted = warp_bands(bands, torch.Generator().manual_seed(0), stretch=0.0, shift=3.0)
    g = torch.Generator().manual_seed(0)
    torch.rand(3, generator=g)  # the stretch draw
    d = (torch.rand(3, generator=g) * 2.0 - 1.0) * 3.0
    expected = (torch.arange(64.0)[None] + d[:, None]).clamp(0.0, 63.0)  # [3, 64]
    torch.testing.assert_close(shifted[:, 0, :, 0], expected)
    assert torch.equal(shifted[..., 0], shifted[..., 4])  # every frame alike
    # a stretch about the centre (31.5), no shift: band m reads (m - 31.5) * s + 31.5
    stretched = warp_bands(bands, torch.Generator().manual_seed(1), stretch=0.1, shift=0.0)
    g = torch.Generator().manual_seed(1)
    s = 1.0 + (torch.rand(3, generator=g) * 2.0 - 1.0) * 0.1
    expected = ((torch.arange(64.0)[None] - 31.5) * s[:, None] + 31.5).clamp(0.0, 63.0)
    torch.testing.assert_close(stretched[:, 0, :, 0], expected)
    # values between bands are interpolated linearly, not rounded
    assert not torch.equal(stretched, stretched.round())


def test_tempo_tolerance_boundaries() -> None:
    assert tempo_matches(100.0, 104.0) and tempo_matches(100.0, 96.0)
    assert not tempo_matches(100.0, 104.1) and not tempo_matches(100.0, math.nan)


def test_music_attribute_checks_by_hand() -> None:
    from tokenlm.eval.analysis import Analysis
    from tokenlm.eval.attributes import check, check_clip, expected_attributes

    labels = {"family": "music", "key": "D major", "tempo_bpm": 100.0, "drums": False,
              "instrument_families": ["guitar", "pipe"], "loudness": None, "meter": "3/4"}
    assert expected_attributes(labels) == {"music_key": "D major", "music_tempo": 100.0, "drums_present": False,
                                           "instrument_family": ["guitar", "pipe"]}
    found = Analysis(duration_s=6.0, music_key="D major", music_tempo_bpm=104.0, instrument_family="pipe",
                     has_drums=False)
    assert all(result.matched for result in check_clip(labels, found))
    wrong = Analysis(duration_s=6.0, music_key="B minor", music_tempo_bpm=104.5, instrument_family="brass",
                     has_drums=True)
    results = {r.attribute: r for r in check_clip(labels, wrong)}
    assert not any(r.matched for r in results.values())
    assert results["music_tempo"].detected == 104.5 and results["instrument_family"].detected == "brass"
    assert check("instrument_family", "strings", Analysis(duration_s=1.0, instrument_family="strings")).matched
    speech = {"family": "speech", "voice_pitch": "high"}
    assert expected_attributes(speech) == {"speech": "speech", "voice_pitch": "high"}
    assert [r.matched for r in check_clip(speech, Analysis(duration_s=2.0, speech=True, voice_pitch="high"))] == \
           [True, True]
    assert [r.matched for r in check_clip(speech, Analysis(duration_s=2.0, speech=False))] == [False, False]
    recorded = {"family": "recorded", "drums": True, "instrument_family": None}
    assert expected_attributes(recorded) == {"drums_present": True}


@needs_fluidsynth
def test_eval_suite_judges_a_music_set(tmp_path: Path) -> None:
    """The suite on a rendered music set, each clip judged against its own labels (the ceiling) and against
    shuffled labels (chance)."""
    import soundfile as sf

    from tokenlm.data.sources import build, get_source
    from tokenlm.eval import run_suite

    build(get_source("music"), tmp_path / "m", n=8, seed=4, progress=False, soundfont="timgm6mb",
          heldout_soundfont="none", duration=4.0, real_melodies=0, generated_melodies=6, ensembles="trio",
          drums_probability=1.0, heldout_fraction=0.2, valid_fraction=0.2)
    records = [json.loads(line) for line in (tmp_path / "m" / "train.jsonl").read_text().splitlines()]
    clips = [sf.read(tmp_path / "m" / r["path"], dtype="float32") for r in records]
    report = run_suite(clips, [r["description"] for r in records], [r["labels"] for r in records], clips,
                       shuffles=4)
    attributes = report["alignment"]
    assert {"music_key", "music_tempo", "drums_present", "instrument_family"} <= set(attributes)
    assert attributes["drums_present"]["score"] == 1.0  # every clip has drums, and the detector hears them
    assert attributes["music_key"]["score"] >= 0.5 and attributes["music_tempo"]["score"] >= 0.5
    assert attributes["overall"]["ceiling"] == attributes["overall"]["score"]
    detections = report["clips"][0]["detections"]
    assert detections["music_key"] is not None and detections["instrument_family"] is not None


@needs_fluidsynth
@pytest.mark.parametrize(("program", "family"), [(73, "pipe"), (56, "brass"), (12, "chromatic percussion"),
                                                 (0, "piano")])
def test_shipped_detector_names_held_out_timbres(program: int, family: str) -> None:
    """The shipped detector (trained on FluidR3) on TimGM6mb renders of generated tunes: the family, most of the
    time, and drums only where they play."""
    from tokenlm.data.sources.music.arrange import Arrangement, arrange
    from tokenlm.data.sources.music.melodies import generate_melody
    from tokenlm.data.sources.music.render import render_notes
    from tokenlm.eval.instrument import shipped_detector

    detector = shipped_detector()
    hits = drums_right = 0
    for seed in range(3):
        tune = generate_melody(np.random.default_rng(seed), f"t{seed}")
        with_drums = seed == 1
        notes = arrange(Arrangement(tune, 0, seed * 3, 100.0 + 10 * seed, 4.0, program, None, None, with_drums))
        wav = render_notes(notes, {0: program}, 0 if with_drums else None, TIMGM, RATE, 4.0)
        found = detector.detect(wav, RATE)
        hits += found.family == family
        drums_right += found.drums == with_drums
    assert hits >= 2 and drums_right == 3

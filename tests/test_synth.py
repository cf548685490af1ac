"""The synthetic captioned data set: determinism, manifests, held-out split, signal building blocks."""

import json
from collections import defaultdict

import numpy as np
import pytest
import soundfile as sf

from tokenlm import cli
from tokenlm.data.synth import FAMILIES, PRESETS, generate_dataset, get_family, make_clip
from tokenlm.data.synth.music import midi_to_hz, note_name, parse_note, parse_pitch_class
from tokenlm.data.synth.signals import (
    coloured_noise,
    harmonic_amplitudes,
    measure_lufs,
    normalize_loudness,
    oscillator,
)
from tokenlm.eval.dsp import N_FFT, stft_power, to_analysis_rate
from tokenlm.eval.spectral import psd_slope

MANIFEST_KEYS = {"path", "duration", "sample_rate", "channels", "description", "labels"}


def test_make_clip_is_deterministic_and_seed_dependent():
    a = make_clip(np.random.default_rng(3), "sfx16k", family="tone")
    b = make_clip(np.random.default_rng(3), "sfx16k", family="tone")
    c = make_clip(np.random.default_rng(4), "sfx16k", family="tone")
    assert np.array_equal(a[0], b[0]) and a[2:] == b[2:]
    assert a[1] == 16000 and a[0].dtype == np.float32
    assert not np.array_equal(a[0][: min(len(a[0]), len(c[0]))], c[0][: min(len(a[0]), len(c[0]))])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_family_of_each_preset_renders_its_duration(preset):
    config = PRESETS[preset]
    for index, family in enumerate(config.families):
        wav, rate, caption, labels = make_clip(np.random.default_rng(index), preset, family=family, duration=4.0)
        assert rate == config.sample_rate and labels["family"] == family
        assert wav.shape == (4 * rate,) and np.isfinite(wav).all()
        assert 0.0 < np.abs(wav).max() <= 0.95 + 1e-6
        assert caption and caption == caption.strip()


def test_generate_dataset_writes_manifests_in_the_training_format(tmp_path):
    manifests = generate_dataset(tmp_path / "set", n=12, seed=5, duration=(1.0, 2.0))
    assert set(manifests) == {"train", "valid", "test_heldout"}
    counts = {}
    for split, path in manifests.items():
        assert path == tmp_path / "set" / f"{split}.jsonl"
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        counts[split] = len(lines)
        for record in lines:
            assert set(record) == MANIFEST_KEYS
            audio = tmp_path / "set" / record["path"]
            assert not record["path"].startswith("/") and record["path"].startswith("audio/")
            data, rate = sf.read(audio)
            assert rate == record["sample_rate"] == 16000 and record["channels"] == 1 and data.ndim == 1
            assert record["duration"] == pytest.approx(len(data) / rate, abs=1e-6)
            assert 1.0 <= record["duration"] <= 2.0
            family = get_family(record["labels"]["family"])
            assert family.heldout(record["labels"]) == (split == "test_heldout")
    assert counts == {"train": 10, "valid": 1, "test_heldout": 1}


def test_generate_dataset_is_reproducible(tmp_path):
    first = generate_dataset(tmp_path / "a", n=6, seed=1, duration=1.5)
    second = generate_dataset(tmp_path / "b", n=6, seed=1, duration=1.5)
    third = generate_dataset(tmp_path / "c", n=6, seed=2, duration=1.5)
    assert first["train"].read_text() == second["train"].read_text()
    assert first["train"].read_text() != third["train"].read_text()
    for path in (tmp_path / "a" / "audio").rglob("*.wav"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_parallel_generation_writes_the_same_data_set(tmp_path):
    one = generate_dataset(tmp_path / "one", n=12, seed=4, duration=1.0)
    two = generate_dataset(tmp_path / "two", n=12, seed=4, duration=1.0, workers=2)
    for split in one:
        assert one[split].read_text() == two[split].read_text()
    waves = sorted((tmp_path / "one" / "audio").rglob("*.wav"))
    assert len(waves) == 12
    for path in waves:
        assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes()
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        generate_dataset(tmp_path / "bad", n=6, workers=0)


def test_heldout_split_recombines_values_all_seen_in_training():
    """Every attribute value of a held-out combination also occurs in non-held-out (training) combinations."""
    for name, family in FAMILIES.items():
        rng = np.random.default_rng(0)
        seen_train, heldout = defaultdict(set), []
        for _ in range(400):
            labels = family.sample(rng, 10.0)
            values = {k: json.dumps(v) for k, v in labels.items() if k not in ("family", "note", "chord", "key")}
            for key in ("chord", "key"):  # a new chord or key is a new pairing of root and quality
                if key in labels:
                    values[f"{key}_root"], values[f"{key}_quality"] = labels[key].split()
            if "order" in labels:  # a new order is a new pairing of two events
                values["first"], values["second"] = labels["order"]
                del values["order"]
            if family.heldout(labels):
                heldout.append(values)
            else:
                for key, value in values.items():
                    seen_train[key].add(value)
        assert heldout, f"family {name} never draws a held-out combination"
        assert len(heldout) < 0.5 * 400, f"family {name} holds out too much"
        for values in heldout:
            for key, value in values.items():
                if key not in ("pitch_hz", "tempo_bpm", "low_hz", "high_hz"):  # continuous values
                    assert value in seen_train[key], (name, key, value)


def test_captions_use_several_templates_per_family():
    for name, family in FAMILIES.items():
        rng = np.random.default_rng(1)
        labels = family.sample(rng, 8.0)
        captions = {family.caption(labels, rng) for _ in range(40)}
        assert len(captions) >= 3, (name, captions)


def test_music_helpers():
    assert midi_to_hz(69) == pytest.approx(440.0) and midi_to_hz(60) == pytest.approx(261.6256, abs=1e-4)
    assert note_name(61) == "C#4" and parse_note("C#4") == 61 and parse_note("Db4") == 61 and parse_note("Cb4") == 59
    assert parse_pitch_class("Bb") == 10 and parse_pitch_class("e♭") == 3
    with pytest.raises(ValueError, match="unknown pitch class 'H'"):
        parse_pitch_class("H")
    with pytest.raises(ValueError, match="not a note name"):
        parse_note("A")


def test_oscillators_follow_their_fourier_series():
    assert harmonic_amplitudes("square", 5) == pytest.approx([4 / np.pi, 0, 4 / (3 * np.pi), 0, 4 / (5 * np.pi)])
    assert harmonic_amplitudes("triangle", 3) == pytest.approx([8 / np.pi**2, 0, -8 / (9 * np.pi**2)])
    rate = 48000
    square = oscillator(100.0, "square", rate, rate, max_harmonics=200)
    ideal = np.sign(np.sin(2 * np.pi * 100.0 * np.arange(1, rate + 1) / rate))
    assert np.median(np.abs(square - ideal)) < 0.05  # Gibbs ripple only near the edges
    spectrum = np.abs(np.fft.rfft(oscillator(1000.0, "sawtooth", 16000, 16000)))
    assert spectrum[7200:].max() < 1e-6 * spectrum.max()  # nothing above 0.45 x the sample rate


def test_noise_colours_have_their_spectral_slopes():
    rng = np.random.default_rng(0)
    for colour, slope in (("white", 0.0), ("pink", -3.0), ("brown", -6.0)):
        noise = coloured_noise(rng, colour, 80000, 16000)
        measured = psd_slope(stft_power(to_analysis_rate(noise, 16000)).mean(1), N_FFT)
        assert measured == pytest.approx(slope, abs=0.6), colour


def test_loudness_normalisation_hits_its_target():
    tone = oscillator(997.0, "sine", 48000, 48000)
    assert measure_lufs(tone, 48000) == pytest.approx(-3.01, abs=0.05)  # BS.1770: full-scale 997 Hz sine
    out, lufs = normalize_loudness(tone, 48000, -23.0)
    assert lufs == pytest.approx(-23.0, abs=0.01) and measure_lufs(out, 48000) == pytest.approx(-23.0, abs=0.01)
    loud, lufs = normalize_loudness(tone, 48000, 0.0)  # would need a peak > 1: limited to 0.95
    assert np.abs(loud).max() == pytest.approx(0.95) and lufs < 0.0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"preset": "fm8k"}, "unknown preset 'fm8k'"),
        ({"duration": (5.0, 2.0)}, "duration must be seconds"),
        ({"duration": 0.1}, "duration must be seconds"),
        ({"family": "opera"}, "unknown family 'opera'"),
        ({"family": "drums", "duration": 1.0}, "family 'drums' needs clips of at least 3.5 s"),
    ],
)
def test_make_clip_errors_name_the_bad_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_clip(np.random.default_rng(0), **kwargs)


def test_generate_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match="n must be an integer >= 3"):
        generate_dataset(tmp_path, n=2)
    with pytest.raises(ValueError, match=r"no family fits clips of at most 2.0 s; the shortest allowed is 3.5 s"):
        generate_dataset(tmp_path, n=5, families=["drums"], duration=2.0)
    with pytest.raises(ValueError, match="unknown family 'harp'"):
        generate_dataset(tmp_path, n=5, families=["harp"])


def test_cli_data_synth(tmp_path, capsys):
    out = tmp_path / "synth"
    assert cli.main(["data", "synth", "--n", "5", "--out", str(out), "--seed", "2", "--preset", "music32k",
                     "--duration", "3.5-4"]) == 0
    assert "test_heldout: 1 clips" in capsys.readouterr().out
    record = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert record["sample_rate"] == 32000 and 3.5 <= record["duration"] <= 4.0
    assert cli.main(["data", "synth", "--n", "5", "--out", str(out), "--duration", "x"]) == 2

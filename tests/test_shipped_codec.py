"""The codec that ships in the package (tokenlm/assets/codec, trained by recipe demo_codec): it loads, and a tone and
coloured noise survive encode -> decode with their detected attributes intact; a damaged asset fails clearly."""

import math
import shutil

import numpy as np
import pytest
import torch

from tokenlm.codecs import shipped
from tokenlm.codecs.shipped import SHIPPED_CODEC_DIR, load_shipped_codec
from tokenlm.data.synth.signals import coloured_noise, oscillator
from tokenlm.eval.analysis import analyze

RATE = 16000


@pytest.fixture(scope="module")
def codec():
    return load_shipped_codec(bandwidth=2.0)


def round_trip(codec, wav: np.ndarray) -> np.ndarray:
    signal = torch.from_numpy(wav.astype(np.float32))[None, None]  # [1, 1, N]
    return codec.decode(codec.encode(signal))[0, 0, : len(wav)].numpy()


def test_the_shipped_codec_is_the_documented_one(codec):
    assert codec.sample_rate == RATE and codec.frame_rate == 50 and codec.cardinality == 1024
    assert codec.num_codebooks == 4
    assert [load_shipped_codec(b).num_codebooks for b in (0.5, 1.0, 4.0)] == [1, 2, 8]
    assert sum(p.stat().st_size for p in SHIPPED_CODEC_DIR.iterdir()) < 20e6  # leaves room for the default models


@pytest.mark.parametrize("freq", [440.0, 880.0, 196.0])
def test_a_sine_tone_keeps_its_pitch_and_waveform(codec, freq):
    wav = 0.2 * oscillator(freq, "sine", RATE, 2 * RATE)
    detected = analyze(round_trip(codec, wav), RATE)
    assert detected.problems == []
    assert abs(1200 * math.log2(detected.f0_hz / freq)) < 50, detected.f0_hz
    assert detected.waveform == "sine"


def test_pink_noise_keeps_its_colour(codec):
    rng = np.random.default_rng(0)
    for colour in ("white", "pink", "brown"):
        wav = 0.1 * coloured_noise(rng, colour, 2 * RATE, RATE)
        assert analyze(wav, RATE).noise_colour == colour  # the detector reads the original right
        assert analyze(round_trip(codec, wav), RATE).noise_colour == colour


def test_a_damaged_shipped_codec_names_the_file_and_how_to_restore_it(tmp_path, monkeypatch):
    copy = tmp_path / "codec"
    shutil.copytree(SHIPPED_CODEC_DIR, copy)
    monkeypatch.setattr(shipped, "SHIPPED_CODEC_DIR", copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: 1000])
    with pytest.raises(ValueError, match=r"shipped codec in .*codec.* cannot be loaded.*force-reinstall tokenlm"):
        shipped.load_shipped_codec()
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=r"model.safetensors' is missing.*recipe=demo_codec"):
        shipped.load_shipped_codec()

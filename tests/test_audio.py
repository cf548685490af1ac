"""Tests for tokenlm.audio: reading, writing, resampling and remixing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tokenlm import audio
from tokenlm.audio import convert_audio, load_audio, read_audio, write_audio

PCM16_TOL = 2.0 / 32768  # one 16-bit step, plus rounding


def sine(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    """A ``[1, N]`` sine wave."""
    t = torch.arange(int(rate * seconds), dtype=torch.float64) / rate
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()[None]


def peak_frequency(wav: torch.Tensor, rate: int) -> float:
    """Frequency (Hz) of the largest FFT bin of a ``[N]`` signal."""
    spectrum = torch.fft.rfft(wav.double()).abs()
    return float(spectrum.argmax()) * rate / wav.shape[-1]


# ----------------------------------------------------------------------------------------------- read / write


def test_wav_round_trip_16bit(tmp_path: Path) -> None:
    wav = 0.8 * torch.rand(2, 1000, generator=torch.Generator().manual_seed(0)) - 0.4  # [2, 1000]
    path = write_audio(tmp_path / "a.wav", wav, 16000, normalize="none")
    assert path == tmp_path / "a.wav"
    assert sf.info(str(path)).subtype == "PCM_16"
    back, rate = read_audio(path)
    assert rate == 16000
    assert back.dtype == torch.float32 and back.shape == (2, 1000)
    assert torch.allclose(back, wav, atol=PCM16_TOL)


def test_write_float_subtype_is_exact(tmp_path: Path) -> None:
    wav = sine(100, 8000)[:, :500]
    write_audio(tmp_path / "f.wav", wav, 8000, normalize="none", subtype="FLOAT")
    back, _ = read_audio(tmp_path / "f.wav")
    assert torch.equal(back, wav)


def test_write_flac_and_ogg(tmp_path: Path) -> None:
    wav = sine(440, 16000)  # [1, 16000]
    write_audio(tmp_path / "s.flac", wav, 16000, normalize="none")
    back, rate = read_audio(tmp_path / "s.flac")
    assert rate == 16000 and torch.allclose(back, wav, atol=PCM16_TOL)
    write_audio(tmp_path / "s.ogg", wav, 16000, normalize="none")
    lossy, rate = read_audio(tmp_path / "s.ogg")
    assert rate == 16000 and lossy.shape[0] == 1
    assert abs(peak_frequency(lossy[0], 16000) - 440) < 2


def test_write_1d_creates_parents_and_leaves_no_temp(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "deep" / "er" / "x.wav", sine(200, 8000)[0], 8000)
    assert read_audio(path)[0].shape == (1, 8000)
    assert [p.name for p in path.parent.iterdir()] == ["x.wav"]


def test_normalize_peak_clip_none(tmp_path: Path) -> None:
    quiet = sine(300, 8000, amplitude=0.1)
    back, _ = read_audio(write_audio(tmp_path / "p.wav", quiet, 8000))  # default: peak
    assert back.abs().max().item() == pytest.approx(0.99, abs=PCM16_TOL)
    assert torch.allclose(back, quiet * (0.99 / quiet.abs().max()), atol=PCM16_TOL)

    loud = torch.tensor([[0.5, 2.0, -3.0, 0.25]])
    back, _ = read_audio(write_audio(tmp_path / "c.wav", loud, 8000, normalize="clip"))
    assert torch.allclose(back, torch.tensor([[0.5, 1.0, -1.0, 0.25]]), atol=PCM16_TOL)

    silent = torch.zeros(1, 100)
    back, _ = read_audio(write_audio(tmp_path / "z.wav", silent, 8000, normalize="peak"))
    assert torch.equal(back, silent)

    back, _ = read_audio(write_audio(tmp_path / "n.wav", quiet, 8000, normalize="none"))
    assert back.abs().max().item() == pytest.approx(0.1, abs=PCM16_TOL)


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    wav = sine(300, 8000)
    with pytest.raises(ValueError, match=r"\.mp3.*\['\.flac', '\.ogg', '\.wav'\]"):
        write_audio(tmp_path / "x.mp3", wav, 8000)
    with pytest.raises(ValueError, match="normalize.*'loud'"):
        write_audio(tmp_path / "x.wav", wav, 8000, normalize="loud")
    with pytest.raises(ValueError, match="subtype 'VORBIS'.*WAV"):
        write_audio(tmp_path / "x.wav", wav, 8000, subtype="VORBIS")
    with pytest.raises(ValueError, match=r"shape \(1, 1, 8000\)"):
        write_audio(tmp_path / "x.wav", wav[None], 8000)
    with pytest.raises(ValueError, match="sample_rate.*-5"):
        write_audio(tmp_path / "x.wav", wav, -5)
    for bad in (float("nan"), float("inf")):
        broken = wav.clone()
        broken[0, 10] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            write_audio(tmp_path / "x.wav", broken, 8000)
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_audio(tmp_path / "keep.wav", sine(300, 8000), 8000)
    before = path.read_bytes()

    def failing_write(file: str, *args: object, **kwargs: object) -> None:
        Path(file).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(audio.sf, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_audio(path, torch.zeros(1, 10), 8000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


def test_read_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        read_audio(tmp_path / "nope.wav")
    garbage = tmp_path / "x.wav"
    garbage.write_bytes(b"this is not a wave file at all" * 10)
    with pytest.raises(ValueError, match=r"could not read audio file '.*x\.wav': "):
        read_audio(garbage)


# ------------------------------------------------------------------------------------------------- convert


@pytest.mark.parametrize(("from_rate", "to_rate"), [(16000, 44100), (44100, 16000), (24000, 32000)])
def test_resample_keeps_frequency_and_length_ratio(from_rate: int, to_rate: int) -> None:
    wav = sine(440, from_rate)  # [1, from_rate]: 1 s
    out = convert_audio(wav, from_rate, to_rate, 1)
    assert out.shape == (1, to_rate)
    assert abs(peak_frequency(out[0], to_rate) - 440) <= 1.0
    # amplitude is kept away from the edges (band-limited interpolation)
    assert out[0, 100:-100].abs().max().item() == pytest.approx(0.5, abs=0.01)


def test_resample_odd_length_and_batch() -> None:
    wav = torch.randn(3, 2, 1001)  # [B, C, N]
    out = convert_audio(wav, 32000, 16000, 2)
    assert out.shape == (3, 2, 500)  # floor(1001 / 2)
    same = convert_audio(wav, 16000, 16000, 2)
    assert torch.equal(same, wav)


def test_mono_stereo_conversion() -> None:
    stereo = torch.stack([torch.ones(5), 3 * torch.ones(5)])  # [2, 5]
    mono = convert_audio(stereo, 8000, 8000, 1)
    assert torch.equal(mono, 2 * torch.ones(1, 5))
    up = convert_audio(mono, 8000, 8000, 2)
    assert up.shape == (2, 5) and torch.equal(up[0], up[1]) and torch.equal(up[1], mono[0])
    batch = convert_audio(torch.randn(4, 1, 7), 8000, 8000, 3)  # [B, 1, N] -> [B, 3, N]
    assert batch.shape == (4, 3, 7) and torch.equal(batch[:, 0], batch[:, 2])


def test_convert_rejects_bad_input() -> None:
    wav = torch.zeros(2, 10)
    with pytest.raises(ValueError, match="2 channels to 3 channels"):
        convert_audio(wav, 8000, 8000, 3)
    with pytest.raises(ValueError, match="from_rate.*0"):
        convert_audio(wav, 0, 8000, 2)
    with pytest.raises(ValueError, match="to_rate.*-16000"):
        convert_audio(wav, 8000, -16000, 2)
    with pytest.raises(ValueError, match="to_rate.*22050.5"):
        convert_audio(wav, 8000, 22050.5, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="to_channels.*0"):
        convert_audio(wav, 8000, 8000, 0)
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        convert_audio(torch.zeros(10), 8000, 8000, 1)
    with pytest.raises(ValueError, match="torch.int16"):
        convert_audio(torch.zeros(1, 10, dtype=torch.int16), 8000, 8000, 1)
    assert convert_audio(wav, np.int64(8000), 8000, 2).shape == (2, 10)


def test_load_audio_converts(tmp_path: Path) -> None:
    stereo = torch.cat([sine(440, 22050), sine(440, 22050)])  # [2, 22050]
    write_audio(tmp_path / "s.wav", stereo, 22050, normalize="none")
    wav = load_audio(tmp_path / "s.wav", sample_rate=16000, channels=1)
    assert wav.shape == (1, 16000) and wav.dtype == torch.float32
    assert abs(peak_frequency(wav[0], 16000) - 440) <= 1.0

"""Tests for tokenlm.audio: reading, writing, resampling and remixing."""

from __future__ import annotations

import math
import re
import warnings
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


CEILING = 10 ** (-1 / 20)  # -1 dBFS: the headroom of peak / rms / loudness


def rms_db(wav: torch.Tensor) -> float:
    return 20 * math.log10(wav.double().pow(2).mean().sqrt().item())


def clicks(rate: int = 16000, seconds: float = 1.0) -> torch.Tensor:
    """A ``[1, N]`` click train (10 per second, 0.5 peak): a large crest factor, so level targets meet the headroom."""
    wav = torch.zeros(1, int(rate * seconds))
    wav[0, :: rate // 10] = 0.5
    return wav


def test_default_keeps_the_level(tmp_path: Path) -> None:
    assert audio.DEFAULT_NORMALIZE == "clip"
    quiet = sine(300, 8000, amplitude=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error", audio.LevelWarning)  # nothing to say: the level is kept
        back, _ = read_audio(write_audio(tmp_path / "q.wav", quiet, 8000))
    assert back.abs().max().item() == pytest.approx(0.05, abs=PCM16_TOL)
    assert torch.allclose(back, quiet, atol=PCM16_TOL)
    exact, _ = read_audio(write_audio(tmp_path / "q32.wav", quiet, 8000, subtype="FLOAT"))
    assert torch.equal(exact, quiet)


def test_clip_scales_down_as_a_whole_and_says_so(tmp_path: Path) -> None:
    loud = torch.tensor([[0.5, 2.0, -3.0, 0.25]])
    with pytest.warns(audio.LevelWarning, match=r"c\.wav'.*peak at \+9\.54 dBFS would clip; scaled down 9\.54 dB"):
        back, _ = read_audio(write_audio(tmp_path / "c.wav", loud, 8000, normalize="clip", subtype="FLOAT"))
    assert torch.allclose(back, torch.tensor([[0.5, 2.0, -3.0, 0.25]]) / 3, atol=1e-7)  # one gain, not clamped
    assert back.abs().max().item() == 1.0


def test_none_writes_the_samples_as_they_are(tmp_path: Path) -> None:
    loud = torch.tensor([[0.5, 2.0, -3.0, 0.25]])
    with pytest.warns(audio.LevelWarning, match=r"2 samples beyond full scale \(peak \+9\.54 dBFS\) were kept"):
        back, _ = read_audio(write_audio(tmp_path / "f.wav", loud, 8000, normalize="none", subtype="FLOAT"))
    assert torch.equal(back, loud)
    with pytest.warns(audio.LevelWarning, match="2 samples beyond full scale .* clipped to full scale by PCM_16"):
        back, _ = read_audio(write_audio(tmp_path / "p.wav", loud, 8000, normalize="none"))
    assert torch.allclose(back, torch.tensor([[0.5, 1.0, -1.0, 0.25]]), atol=PCM16_TOL)


def test_peak_puts_the_peak_at_minus_one_dbfs(tmp_path: Path) -> None:
    for amplitude in (0.1, 3.0):
        wav = sine(300, 8000, amplitude=amplitude)
        back, _ = read_audio(write_audio(tmp_path / "p.wav", wav, 8000, normalize="peak", subtype="FLOAT"))
        assert back.abs().max().item() == pytest.approx(CEILING, rel=1e-6)
        assert torch.allclose(back, wav * (CEILING / wav.abs().max()), atol=1e-6)
    silent = torch.zeros(1, 100)
    back, _ = read_audio(write_audio(tmp_path / "z.wav", silent, 8000, normalize="peak"))
    assert torch.equal(back, silent)


def test_rms_reaches_its_target_within_the_headroom(tmp_path: Path) -> None:
    wav = sine(300, 16000, amplitude=0.05)
    for target in (-18.0, -6.0):
        back, _ = read_audio(write_audio(tmp_path / "r.wav", wav, 16000, normalize="rms", rms_db=target,
                                         subtype="FLOAT"))
        assert rms_db(back) == pytest.approx(target, abs=0.01)
    assert rms_db(read_audio(write_audio(tmp_path / "d.wav", wav, 16000, normalize="rms"))[0]) == pytest.approx(
        audio.DEFAULT_RMS_DB, abs=0.01)
    # a click train's peak is 32.04 dB above its RMS: at -18 dBFS RMS it would peak at +14.04 dBFS, so it is held
    # at -1 dBFS, 15.04 dB short of the target
    assert 20 * math.log10(0.5) - rms_db(clicks()) == pytest.approx(32.04, abs=0.005)
    with pytest.warns(audio.LevelWarning, match=r"-18 dBFS RMS would put its peak at \+14\.04 dBFS; scaled down "
                                                r"15\.04 dB to keep peaks at -1 dBFS, so it is at -33\.04 dBFS RMS"):
        back, _ = read_audio(write_audio(tmp_path / "c.wav", clicks(), 16000, normalize="rms", subtype="FLOAT"))
    assert back.abs().max().item() == pytest.approx(CEILING, rel=1e-6)
    assert rms_db(back) == pytest.approx(-33.04, abs=0.01)


def test_loudness_reaches_its_lufs_target_within_the_headroom(tmp_path: Path) -> None:
    noise = 0.01 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))  # [2, N] stereo
    for target in (-14.0, -23.0):
        path = write_audio(tmp_path / "l.wav", noise, 16000, normalize="loudness", loudness_db=target)
        back, _ = read_audio(path)
        assert audio.loudness_lufs(back, 16000) == pytest.approx(target, abs=0.1)
        assert back.abs().max().item() <= CEILING + PCM16_TOL
    default, _ = read_audio(write_audio(tmp_path / "d.flac", noise, 16000, normalize="loudness"))
    assert audio.loudness_lufs(default, 16000) == pytest.approx(audio.DEFAULT_LOUDNESS_DB, abs=0.1)
    with pytest.warns(audio.LevelWarning) as record:
        back, _ = read_audio(write_audio(tmp_path / "c.wav", clicks(), 16000, normalize="loudness", subtype="FLOAT"))
    message = str(record[0].message)
    assert re.search(r"-14 LUFS would put its peak at \+\d+\.\d\d dBFS; scaled down \d+\.\d\d dB to keep peaks at "
                     r"-1 dBFS", message), message
    reached = float(re.search(r"so it is at (-\d+\.\d+) LUFS", message).group(1))
    assert back.abs().max().item() == pytest.approx(CEILING, rel=1e-6)
    assert audio.loudness_lufs(back, 16000) == pytest.approx(reached, abs=0.1) and reached < -14.5


def test_subtypes_pcm_24_and_float(tmp_path: Path) -> None:
    wav = 0.8 * torch.rand(1, 1000, generator=torch.Generator().manual_seed(1)) - 0.4  # [1, 1000]
    path = write_audio(tmp_path / "a.wav", wav, 16000, subtype="PCM_24")
    assert sf.info(str(path)).subtype == "PCM_24"
    assert torch.allclose(read_audio(path)[0], wav, atol=2.0 / 2**23)
    path = write_audio(tmp_path / "b.wav", wav, 16000, subtype="float")  # case does not matter
    assert sf.info(str(path)).subtype == "FLOAT" and torch.equal(read_audio(path)[0], wav)
    path = write_audio(tmp_path / "c.flac", wav, 16000, subtype="PCM_24")
    assert sf.info(str(path)).subtype == "PCM_24"


def test_audio_save_keeps_a_batch_relative_levels(tmp_path: Path) -> None:
    from tokenlm.api import Audio

    quiet, loud = sine(300, 16000, amplitude=0.1), sine(500, 16000, amplitude=2.0)  # the loud one would clip
    batch = Audio(torch.stack([quiet, loud]), 16000)  # [2, 1, N]
    with pytest.warns(audio.LevelWarning, match=r"the batch .*b_0\.wav' \.\.\. .*b_1\.wav'.*scaled down 6\.02 dB.*"
                                                r"one gain for the whole batch"):
        paths = batch.save(tmp_path / "b.wav", subtype="FLOAT")
    (q, _), (lo, _) = read_audio(paths[0]), read_audio(paths[1])
    assert lo.abs().max().item() == 1.0
    assert rms_db(lo) - rms_db(q) == pytest.approx(rms_db(loud) - rms_db(quiet), abs=1e-4)  # 26 dB apart still
    assert torch.allclose(q, quiet / 2, atol=1e-7)
    # a batch that does not clip is written as generated
    paths = Audio(torch.stack([quiet, quiet / 4]), 16000).save(tmp_path / "k.wav", subtype="FLOAT")
    assert torch.equal(read_audio(paths[0])[0], quiet) and torch.equal(read_audio(paths[1])[0], quiet / 4)
    # peak / rms / loudness set each file's level on its own
    paths = batch.save(tmp_path / "p.wav", normalize="peak")
    assert [read_audio(p)[0].abs().max().item() for p in paths] == pytest.approx([CEILING] * 2, abs=PCM16_TOL)
    paths = batch.save(tmp_path / "l.wav", normalize="loudness", loudness_db=-20)
    assert [audio.loudness_lufs(read_audio(p)[0], 16000) for p in paths] == pytest.approx([-20, -20], abs=0.1)


def test_audio_save_refuses_before_writing_anything(tmp_path: Path) -> None:
    from tokenlm.api import Audio

    batch = Audio(torch.stack([sine(300, 16000), torch.zeros(1, 16000)]), 16000)  # the second one is silent
    with pytest.raises(ValueError, match=r"cannot bring '.*s_1\.wav' to -14 LUFS: it is silent"):
        batch.save(tmp_path / "s.wav", normalize="loudness")
    with pytest.raises(ValueError, match=r"normalize must be one of \['none', 'clip', 'peak', 'rms', 'loudness'\]"):
        batch.save(tmp_path / "s.wav", normalize="lufs")
    with pytest.raises(ValueError, match=r"'PCM_24' cannot be written to a '\.ogg' file"):
        batch.save(tmp_path / "s.ogg", subtype="PCM_24")
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    wav = sine(300, 8000)
    with pytest.raises(ValueError, match=r"\.mp3.*\['\.flac', '\.ogg', '\.wav'\]"):
        write_audio(tmp_path / "x.mp3", wav, 8000)
    with pytest.raises(ValueError, match=r"normalize must be one of \['none', 'clip', 'peak', 'rms', 'loudness'\], "
                                         r"got 'loud'"):
        write_audio(tmp_path / "x.wav", wav, 8000, normalize="loud")
    with pytest.raises(ValueError, match="subtype 'VORBIS'.*WAV"):
        write_audio(tmp_path / "x.wav", wav, 8000, subtype="VORBIS")
    with pytest.raises(ValueError, match=r"unknown subtype 'PCM_12'; WAV \('\.wav'\) takes: \[.*'FLOAT'.*'PCM_16', "
                                         r"'PCM_24'"):
        write_audio(tmp_path / "x.wav", wav, 8000, subtype="PCM_12")
    with pytest.raises(ValueError, match=r"subtype 'PCM_24' cannot be written to a '\.ogg' file \(OGG\); OGG takes: "
                                         r"\['OPUS', 'VORBIS'\]"):
        write_audio(tmp_path / "x.ogg", wav, 8000, subtype="PCM_24")
    with pytest.raises(ValueError, match=r"subtype 'FLOAT' cannot be written to a '\.flac' file"):
        write_audio(tmp_path / "x.flac", wav, 8000, subtype="FLOAT")
    silent = torch.zeros(1, 8000)
    with pytest.raises(ValueError, match=r"cannot bring '.*x\.wav' to -14 LUFS: it is silent \(integrated loudness "
                                         r"-inf, under the -70 LUFS gate\)"):
        write_audio(tmp_path / "x.wav", silent, 8000, normalize="loudness")
    with pytest.raises(ValueError, match=r"cannot bring '.*x\.wav' to -18 dBFS RMS: it is silent"):
        write_audio(tmp_path / "x.wav", silent, 8000, normalize="rms")
    with pytest.raises(ValueError, match=r"-14 LUFS: loudness is measured over 400 ms blocks.*only 0\.250 s long"):
        write_audio(tmp_path / "x.wav", wav[:, :2000], 8000, normalize="loudness")
    for bad in (3.0, float("nan"), float("-inf")):
        with pytest.raises(ValueError, match=rf"loudness_db must be a finite level in dB at or below 0.*got {bad}"):
            write_audio(tmp_path / "x.wav", wav, 8000, normalize="loudness", loudness_db=bad)
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

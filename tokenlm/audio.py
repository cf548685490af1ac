"""Audio in and out: read, write, resample and remix waveforms, and set the level of written files.

Waveforms are float32 tensors shaped ``[C, N]`` (channels, samples), or ``[..., C, N]`` where a batch is
allowed. Files are read and written with soundfile; resampling uses julius; loudness is measured with pyloudnorm
(ITU-R BS.1770-4).

Files keep the level they are given unless asked otherwise: the default ``normalize="clip"`` only protects against
clipping (a clip whose peak would pass full scale is scaled down as a whole, with a :class:`LevelWarning`).
``"peak"``, ``"rms"`` and ``"loudness"`` set each file's level to a target and keep its peaks at or below
−1 dBFS (:data:`HEADROOM_DB`); ``"none"`` writes the samples as they are.

Example::

    wav = load_audio("dog.flac", sample_rate=32000, channels=1)  # [1, N] at 32 kHz
    write_audio("out/dog.wav", wav, 32000)                       # the level as is (scaled down only if it would clip)
    write_audio("out/dog_loud.wav", wav, 32000, normalize="loudness", loudness_db=-14.0)  # -14 LUFS
"""

from __future__ import annotations

import math
import numbers
import os
import uuid
import warnings
from pathlib import Path

import julius
import numpy as np
import soundfile as sf
import torch

#: file extension -> soundfile container format
AUDIO_FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
#: default sample encoding per container
DEFAULT_SUBTYPES: dict[str, str] = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}
#: the sample encodings the command line offers (``write_audio`` takes any soundfile subtype the container holds)
CLI_SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
#: how ``write_audio`` sets the level of a file (see :func:`level_audio`)
NORMALIZE_MODES = ("none", "clip", "peak", "rms", "loudness")
#: keep the level, scale down only what would clip
DEFAULT_NORMALIZE = "clip"
#: dB below full scale that ``peak``, ``rms`` and ``loudness`` keep the peaks at (or below)
HEADROOM_DB = 1.0
#: the target of ``normalize="loudness"``, in LUFS (integrated loudness, ITU-R BS.1770-4)
DEFAULT_LOUDNESS_DB = -14.0
#: the target of ``normalize="rms"``, in dBFS (RMS over all channels and samples)
DEFAULT_RMS_DB = -18.0
#: pyloudnorm's gating block: integrated loudness needs at least this much audio
LOUDNESS_BLOCK_S = 0.4


class LevelWarning(UserWarning):
    """A written file's level differs from what was asked: scaled down to avoid clipping, a target not reached
    because of the headroom, or samples beyond full scale written as they are."""


def _db(gain: float) -> float:
    """``gain`` (linear amplitude) in dB; -inf for 0."""
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


def _check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int, or raise ValueError naming it when it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def read_audio(path: str | Path) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 ``[C, N]`` in [-1, 1] and its sample rate.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file exists but soundfile cannot decode it (corrupt or unsupported).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: '{path}'")
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)  # [N, C]
    except (sf.SoundFileError, RuntimeError, TypeError, OSError) as error:
        raise ValueError(f"could not read audio file '{path}': {error}") from error
    wav = torch.from_numpy(data.T.copy())  # [C, N]
    return wav, int(sample_rate)


def convert_audio(wav: torch.Tensor, from_rate: int, to_rate: int, to_channels: int) -> torch.Tensor:
    """Remix ``wav`` ``[..., C, N]`` to ``to_channels`` and resample it from ``from_rate`` to ``to_rate``.

    Channels: C -> 1 averages, 1 -> C repeats; other changes are ambiguous and rejected.
    The output has ``floor(N * to_rate / from_rate)`` samples.
    """
    from_rate = _check_positive_int(from_rate, "from_rate")
    to_rate = _check_positive_int(to_rate, "to_rate")
    to_channels = _check_positive_int(to_channels, "to_channels")
    if wav.dim() < 2:
        raise ValueError(f"expected a waveform shaped [..., C, N], got shape {tuple(wav.shape)}")
    if not wav.is_floating_point():
        raise ValueError(f"expected a floating point waveform, got dtype {wav.dtype}")
    channels = wav.shape[-2]
    if channels != to_channels:
        if to_channels == 1:
            wav = wav.mean(dim=-2, keepdim=True)  # [..., 1, N]
        elif channels == 1:
            wav = wav.expand(*wav.shape[:-2], to_channels, wav.shape[-1]).contiguous()  # [..., C, N]
        else:
            raise ValueError(f"cannot convert audio with {channels} channels to {to_channels} channels")
    if from_rate != to_rate:
        wav = julius.resample_frac(wav, from_rate, to_rate)  # [..., C, N * to_rate // from_rate]
    return wav


def load_audio(path: str | Path, sample_rate: int, channels: int) -> torch.Tensor:
    """Read ``path`` and convert it to ``[channels, N]`` float32 at ``sample_rate``."""
    wav, file_rate = read_audio(path)  # [C, N]
    return convert_audio(wav, file_rate, sample_rate, channels)


def check_normalize(normalize: object) -> str:
    """Return ``normalize`` if it is one of :data:`NORMALIZE_MODES`, else raise ValueError listing them."""
    if not isinstance(normalize, str) or normalize not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {list(NORMALIZE_MODES)}, got {normalize!r}")
    return normalize


def check_level_target(value: object, name: str) -> float:
    """Return a level target in dB (``loudness_db`` in LUFS, ``rms_db`` in dBFS) as a float: finite and <= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value > 0:
        raise ValueError(f"{name} must be a finite level in dB at or below 0 (e.g. -14), got {value!r}")
    return float(value)


def audio_format(path: str | Path, subtype: str | None = None) -> tuple[str, str]:
    """The soundfile container of ``path`` (from its extension) and the sample encoding to write it with.

    ``subtype`` is a soundfile subtype (case-insensitive, e.g. ``PCM_16``, ``PCM_24``, ``FLOAT``); None picks the
    container's default (:data:`DEFAULT_SUBTYPES`). An unknown extension, an unknown subtype or one the container
    cannot hold (``.ogg`` with ``PCM_24``, ``.flac`` with ``FLOAT``) is a ValueError naming what is allowed.
    """
    path = Path(path)
    container = AUDIO_FORMATS.get(path.suffix.lower())
    if container is None:
        allowed = sorted(AUDIO_FORMATS)
        raise ValueError(f"unknown audio extension '{path.suffix}' in '{path}'; allowed: {allowed}")
    if subtype is None:
        return container, DEFAULT_SUBTYPES[container]
    if not isinstance(subtype, str):
        raise ValueError(f"subtype must be a string such as 'PCM_16', got {subtype!r}")
    name = subtype.upper()
    allowed = sorted(sf.available_subtypes(container))
    if name not in sf.available_subtypes():
        raise ValueError(f"unknown subtype '{subtype}'; {container} ('{path.suffix}') takes: {allowed}")
    if not sf.check_format(container, name):
        raise ValueError(f"subtype '{name}' cannot be written to a '{path.suffix}' file ({container}); "
                         f"{container} takes: {allowed}")
    return container, name


def loudness_lufs(wav: torch.Tensor, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, pyloudnorm) of ``wav`` ``[C, N]`` in LUFS; -inf for silence.

    Raises:
        ValueError: shorter than the 0.4 s gating block, or more than 5 channels.
    """
    import pyloudnorm

    sample_rate = _check_positive_int(sample_rate, "sample_rate")
    if wav.dim() != 2:
        raise ValueError(f"expected a waveform shaped [C, N], got shape {tuple(wav.shape)}")
    channels, samples = wav.shape
    if samples < LOUDNESS_BLOCK_S * sample_rate:
        raise ValueError(
            f"loudness is measured over {LOUDNESS_BLOCK_S * 1000:.0f} ms blocks (ITU-R BS.1770); this audio is only "
            f"{samples / sample_rate:.3f} s long (use normalize 'rms' or 'peak' for shorter clips)"
        )
    if channels > 5:
        raise ValueError(f"loudness is defined for at most 5 channels, this audio has {channels}")
    data = wav.detach().cpu().double().T.numpy()  # [N, C]
    with np.errstate(divide="ignore"):  # silence: log10(0) = -inf, which is the answer
        return float(pyloudnorm.Meter(sample_rate).integrated_loudness(data))


def _refuse_silence(name: str, target: str, measured: str) -> None:
    raise ValueError(
        f"cannot bring {name} to {target}: it is silent ({measured}) and no gain gives silence a level; "
        "write it with normalize 'clip' or 'none'"
    )


def _with_headroom(wav: torch.Tensor, name: str, target: str, unit: str, target_db: float) -> torch.Tensor:
    """Scale ``wav`` down as a whole if its peak is above -HEADROOM_DB dBFS, warning that ``target`` was missed
    and by how much (a gain shifts RMS and LUFS by the same number of dB)."""
    ceiling = 10.0 ** (-HEADROOM_DB / 20.0)
    peak = float(wav.abs().max()) if wav.numel() else 0.0
    if peak <= ceiling:
        return wav
    reduction_db = _db(peak / ceiling)
    warnings.warn(
        f"{name}: {target} would put its peak at {_db(peak):+.2f} dBFS; scaled down {reduction_db:.2f} dB to keep "
        f"peaks at -{HEADROOM_DB:g} dBFS, so it is at {target_db - reduction_db:.2f} {unit}",
        LevelWarning, stacklevel=4,
    )
    return wav * (ceiling / peak)


def _level_one(
    wav: torch.Tensor, sample_rate: int, mode: str, loudness_db: float, rms_db: float, name: str
) -> torch.Tensor:
    """``peak`` / ``rms`` / ``loudness`` for one clip ``[C, N]`` (float32)."""
    if mode == "peak":
        peak = float(wav.abs().max()) if wav.numel() else 0.0
        if peak == 0:
            return wav  # silence stays silence
        return wav * (10.0 ** (-HEADROOM_DB / 20.0) / peak)
    if mode == "rms":
        rms = float(wav.double().pow(2).mean().sqrt()) if wav.numel() else 0.0
        if rms == 0:
            _refuse_silence(name, f"{rms_db:g} dBFS RMS", "RMS 0")
        out = wav * (10.0 ** (rms_db / 20.0) / rms)
        return _with_headroom(out, name, f"{rms_db:g} dBFS RMS", "dBFS RMS", rms_db)
    try:  # mode == "loudness"
        measured = loudness_lufs(wav, sample_rate)
    except ValueError as error:
        raise ValueError(f"cannot bring {name} to {loudness_db:g} LUFS: {error}") from error
    if not math.isfinite(measured):
        _refuse_silence(name, f"{loudness_db:g} LUFS", "integrated loudness -inf, under the -70 LUFS gate")
    out = wav * (10.0 ** ((loudness_db - measured) / 20.0))
    return _with_headroom(out, name, f"{loudness_db:g} LUFS", "LUFS", loudness_db)


def level_audio(
    wav: torch.Tensor,
    sample_rate: int,
    normalize: str = DEFAULT_NORMALIZE,
    *,
    loudness_db: float = DEFAULT_LOUDNESS_DB,
    rms_db: float = DEFAULT_RMS_DB,
    name: str = "audio",
) -> torch.Tensor:
    """The samples ``write_audio`` writes for ``wav`` ``[C, N]`` or ``[B, C, N]`` (float32, same shape).

    ``normalize``:

    - ``"clip"`` (default): keep the level. If the peak of everything given is above full scale (|x| > 1), all of
      it is scaled down by one gain so that the peak is exactly full scale (never hard-clipped), with a
      :class:`LevelWarning`. A batch is scaled as a whole, so its clips keep their relative levels.
    - ``"none"``: unchanged (samples beyond full scale are clipped by integer formats when written).
    - ``"peak"``: each clip scaled so that its peak is at -1 dBFS (:data:`HEADROOM_DB`); silence stays silent.
    - ``"rms"``: each clip scaled to ``rms_db`` dBFS RMS (over all its channels and samples).
    - ``"loudness"``: each clip scaled to ``loudness_db`` LUFS (integrated loudness, pyloudnorm).

    ``rms`` and ``loudness`` keep the peaks at or below -1 dBFS: a clip that would go above is scaled down as a
    whole (its level then falls short of the target, with a :class:`LevelWarning`); they refuse silence, which no
    gain can bring to a level. ``name`` labels the audio in messages.
    """
    check_normalize(normalize)
    sample_rate = _check_positive_int(sample_rate, "sample_rate")
    loudness_db = check_level_target(loudness_db, "loudness_db")
    rms_db = check_level_target(rms_db, "rms_db")
    if wav.dim() not in (2, 3):
        raise ValueError(f"expected a waveform shaped [C, N] or [B, C, N], got shape {tuple(wav.shape)}")
    wav = wav.detach().cpu().float()
    if not torch.isfinite(wav).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if normalize == "none":
        return wav
    if normalize == "clip":
        peak = wav.abs().max() if wav.numel() else torch.tensor(0.0)
        if peak <= 1.0:
            return wav
        warnings.warn(
            f"{name}: peak at {_db(float(peak)):+.2f} dBFS would clip; scaled down {_db(float(peak)):.2f} dB as a "
            "whole to full scale" + (" (one gain for the whole batch, so relative levels are kept)"
                                     if wav.dim() == 3 and len(wav) > 1 else ""),
            LevelWarning, stacklevel=2,
        )
        return wav / peak  # a division keeps every |x| <= 1 exactly, the peak itself at 1
    if wav.dim() == 3:
        return torch.stack([
            _level_one(item, sample_rate, normalize, loudness_db, rms_db, f"{name} (item {index})")
            for index, item in enumerate(wav)
        ])  # [B, C, N]
    return _level_one(wav, sample_rate, normalize, loudness_db, rms_db, name)


def write_audio(
    path: str | Path,
    wav: torch.Tensor,
    sample_rate: int,
    normalize: str = DEFAULT_NORMALIZE,
    subtype: str | None = None,
    *,
    loudness_db: float = DEFAULT_LOUDNESS_DB,
    rms_db: float = DEFAULT_RMS_DB,
) -> Path:
    """Write ``wav`` ``[C, N]`` (or ``[N]``) to ``path`` atomically and return the path.

    The container comes from the extension (``.wav``, ``.flac``, ``.ogg``). ``normalize`` sets the level
    (:func:`level_audio`): ``"clip"`` (default) keeps it and only scales a clip that would pass full scale down as
    a whole; ``"none"``, ``"peak"`` (-1 dBFS), ``"rms"`` (``rms_db`` dBFS) and ``"loudness"`` (``loudness_db``
    LUFS) as described there. ``subtype`` is soundfile's sample encoding (case-insensitive; e.g. ``PCM_16``,
    ``PCM_24``, ``FLOAT``), by default 16-bit PCM for wav and flac and Vorbis for ogg; ``FLOAT`` stores float32
    samples bit for bit. With ``"none"``, samples beyond full scale are clipped by integer (PCM) formats and kept
    by ``FLOAT``, with a :class:`LevelWarning` either way. Parent folders are created; the file is written under a
    temporary name in the same folder and renamed, so readers never see a partial file.
    """
    path = Path(path)
    sample_rate = _check_positive_int(sample_rate, "sample_rate")
    container, subtype = audio_format(path, subtype)
    check_normalize(normalize)
    if wav.dim() == 1:
        wav = wav[None]  # [1, N]
    if wav.dim() != 2:
        raise ValueError(f"expected a waveform shaped [C, N] or [N], got shape {tuple(wav.shape)}")
    wav = wav.detach().cpu().float()
    if not torch.isfinite(wav).all():
        raise ValueError(f"waveform for '{path}' contains NaN or infinite values")
    wav = level_audio(wav, sample_rate, normalize, loudness_db=loudness_db, rms_db=rms_db, name=f"'{path}'")
    beyond = int((wav.abs() > 1.0).sum())
    if beyond:
        fate = "kept as they are" if subtype in ("FLOAT", "DOUBLE") else f"clipped to full scale by {subtype}"
        warnings.warn(f"'{path}': {beyond} samples beyond full scale (peak {_db(float(wav.abs().max())):+.2f} dBFS) "
                      f"were {fate}", LevelWarning, stacklevel=2)
        if subtype not in ("FLOAT", "DOUBLE"):
            wav = wav.clamp(-1.0, 1.0)
    data = wav.T.numpy()  # [N, C]

    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name (not mkstemp, whose 0600 mode would leak into the result) in the same folder
    tmp_path = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        sf.write(str(tmp_path), data, sample_rate, subtype=subtype, format=container)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


#: highest sample rate accepted for a user's audio (resampling cost grows with the ratio of the rates)
MAX_SAMPLE_RATE = 1_000_000


def batch_audio(
    audio: torch.Tensor | str | Path, sample_rate: int | None, to_rate: int, channels: int, batch: int,
    name: str = "prompt_audio", rate_name: str = "prompt_sample_rate", max_seconds: float | None = None,
    too_long: str = "{name} lasts {seconds:.2f} s, longer than {limit} s",
) -> tuple[torch.Tensor, int]:
    """A user's audio (a file path, or a ``[C, N]`` / ``[B, C, N]`` tensor at ``sample_rate``) as ``[batch, C, N]``
    at ``to_rate`` with ``channels`` channels (resampled and remixed); also returns the source sample rate.

    Everything is checked before any resampling, each error naming ``name`` / ``rate_name``: the type, shape and
    rate, finite samples, and the length: more than ``max_seconds`` is refused with the message ``too_long``
    (formatted with ``name``, ``seconds`` and ``limit`` = ``max_seconds``)."""
    if isinstance(audio, (str, Path)):
        wav, source_rate = read_audio(audio)  # [C, N]
    elif isinstance(audio, torch.Tensor):
        if sample_rate is None:
            raise ValueError(f"{rate_name} is needed with a {name} tensor")
        if audio.dim() not in (2, 3) or audio.is_complex():
            raise ValueError(f"{name} must be a real [C, N] or [B, C, N] tensor, got {audio.dtype} shaped "
                             f"{tuple(audio.shape)}")
        wav, source_rate = audio.float(), _check_positive_int(sample_rate, rate_name)
        if source_rate > MAX_SAMPLE_RATE:
            raise ValueError(f"{rate_name} must be at most {MAX_SAMPLE_RATE} Hz, got {sample_rate!r}")
    else:
        raise ValueError(f"{name} must be a tensor or a file path, got {type(audio).__name__}")
    if wav.shape[-1] == 0 or wav.shape[-2] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(wav.shape)}: no samples or no channels)")
    if not bool(torch.isfinite(wav).all()):
        raise ValueError(f"{name} holds NaN or infinite samples")
    seconds = wav.shape[-1] / source_rate
    if max_seconds is not None and seconds > max_seconds + 1e-9:
        raise ValueError(too_long.format(name=name, seconds=seconds, limit=max_seconds))
    wav = convert_audio(wav, source_rate, to_rate, channels)
    if wav.dim() == 2:
        wav = wav[None].expand(batch, -1, -1)  # [B, C, N]
    if wav.dim() != 3 or wav.shape[0] != batch:
        raise ValueError(f"{name} must be [C, N] or [B, C, N] with B = {batch} prompts, got {tuple(wav.shape)}")
    if wav.shape[-1] == 0:
        raise ValueError(f"{name} is empty")
    return wav, source_rate


# ---------------------------------------------------------------------------------------------- streamed WAV

#: the largest sample a 16-bit PCM stream holds
PCM16_SCALE = 32767


def wav_stream_header(num_frames: int, channels: int, sample_rate: int) -> bytes:
    """The 44-byte header of a 16-bit PCM WAV holding ``num_frames`` frames of ``channels`` channels: what a
    streamed WAV starts with, its length known ahead (the requested duration)."""
    for name, value in (("num_frames", num_frames), ("channels", channels), ("sample_rate", sample_rate)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "num_frames" else 1):
            raise ValueError(f"wav_stream_header: {name} must be a whole number, got {value!r}")
    import struct

    data = num_frames * channels * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, channels,
            sample_rate, sample_rate * channels * 2, channels * 2, 16) + b"data" + struct.pack("<I", data))


def pcm16_bytes(wav: torch.Tensor) -> bytes:
    """``[C, n]`` float samples -> interleaved little-endian 16-bit PCM (clipped at full scale, rounded)."""
    if wav.dim() != 2:
        raise ValueError(f"pcm16_bytes takes [C, n] samples, got shape {tuple(wav.shape)}")
    ints = (wav.detach().float().clamp(-1.0, 1.0) * PCM16_SCALE).round().to(torch.int16)  # [C, n]
    return ints.T.contiguous().numpy().astype("<i2").tobytes()

"""Audio in and out: read, write, resample and remix waveforms.

Waveforms are float32 tensors shaped ``[C, N]`` (channels, samples), or ``[..., C, N]`` where a batch is
allowed. Files are read and written with soundfile; resampling uses julius.

Example::

    wav = load_audio("dog.flac", sample_rate=32000, channels=1)  # [1, N] at 32 kHz
    write_audio("out/dog.wav", wav, 32000)
"""

from __future__ import annotations

import numbers
import os
import uuid
from pathlib import Path

import julius
import soundfile as sf
import torch

#: file extension -> soundfile container format
AUDIO_FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
#: default sample encoding per container
DEFAULT_SUBTYPES: dict[str, str] = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}
NORMALIZE_MODES = ("peak", "clip", "none")
PEAK_TARGET = 0.99


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


def _normalize(wav: torch.Tensor, mode: str) -> torch.Tensor:
    """Apply the ``write_audio`` normalisation ``mode`` to ``wav``."""
    if mode == "clip":
        return wav.clamp(-1.0, 1.0)
    if mode == "peak" and wav.numel() > 0:
        peak = wav.abs().max()
        if peak > 0:
            return wav * (PEAK_TARGET / peak)
    return wav


def write_audio(
    path: str | Path,
    wav: torch.Tensor,
    sample_rate: int,
    normalize: str = "peak",
    subtype: str | None = None,
) -> Path:
    """Write ``wav`` ``[C, N]`` (or ``[N]``) to ``path`` atomically and return the path.

    The container comes from the extension (``.wav``, ``.flac``, ``.ogg``). ``normalize`` is ``"peak"``
    (scale so that max |x| = 0.99, silence left as is), ``"clip"`` (clamp to [-1, 1]) or ``"none"`` (values
    outside [-1, 1] then clip or wrap, depending on ``subtype``). ``subtype`` is soundfile's sample encoding,
    by default 16-bit PCM for wav and flac and Vorbis for ogg. Parent folders are created; the file is written
    under a temporary name in the same folder and renamed, so readers never see a partial file.
    """
    path = Path(path)
    sample_rate = _check_positive_int(sample_rate, "sample_rate")
    audio_format = AUDIO_FORMATS.get(path.suffix.lower())
    if audio_format is None:
        allowed = sorted(AUDIO_FORMATS)
        raise ValueError(f"unknown audio extension '{path.suffix}' in '{path}'; allowed: {allowed}")
    subtype = subtype or DEFAULT_SUBTYPES[audio_format]
    if not sf.check_format(audio_format, subtype):
        allowed = sorted(sf.available_subtypes(audio_format))
        raise ValueError(f"subtype '{subtype}' is not valid for {audio_format}; allowed: {allowed}")
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {list(NORMALIZE_MODES)}, got {normalize!r}")
    if wav.dim() == 1:
        wav = wav[None]  # [1, N]
    if wav.dim() != 2:
        raise ValueError(f"expected a waveform shaped [C, N] or [N], got shape {tuple(wav.shape)}")
    wav = wav.detach().cpu().float()
    if not torch.isfinite(wav).all():
        raise ValueError(f"waveform for '{path}' contains NaN or infinite values")
    data = _normalize(wav, normalize).T.numpy()  # [N, C]

    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name (not mkstemp, whose 0600 mode would leak into the result) in the same folder
    tmp_path = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        sf.write(str(tmp_path), data, sample_rate, subtype=subtype, format=audio_format)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def batch_audio(
    audio: torch.Tensor | str | Path, sample_rate: int | None, to_rate: int, channels: int, batch: int,
    name: str = "prompt_audio", rate_name: str = "prompt_sample_rate",
) -> tuple[torch.Tensor, int]:
    """A user's audio (a file path, or a ``[C, N]`` / ``[B, C, N]`` tensor at ``sample_rate``) as ``[batch, C, N]``
    at ``to_rate`` with ``channels`` channels (resampled and remixed); also returns the source sample rate."""
    if isinstance(audio, (str, Path)):
        wav, source_rate = read_audio(audio)  # [C, N]
    elif isinstance(audio, torch.Tensor):
        if sample_rate is None:
            raise ValueError(f"{rate_name} is needed with a {name} tensor")
        wav, source_rate = audio.float(), int(sample_rate)
    else:
        raise ValueError(f"{name} must be a tensor or a file path, got {type(audio).__name__}")
    wav = convert_audio(wav, source_rate, to_rate, channels)
    if wav.dim() == 2:
        wav = wav[None].expand(batch, -1, -1)  # [B, C, N]
    if wav.dim() != 3 or wav.shape[0] != batch:
        raise ValueError(f"{name} must be [C, N] or [B, C, N] with B = {batch} prompts, got {tuple(wav.shape)}")
    if wav.shape[-1] == 0:
        raise ValueError(f"{name} is empty")
    return wav, source_rate

"""Minimal PNG writing (RGB, 8 bit) and spectrogram images, with no imaging dependency."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from tokenlm.eval import dsp

#: anchor colours of a perceptually ordered dark-blue -> green -> yellow map (viridis-like)
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a ``[H, W, 3]`` uint8 RGB image as a PNG file."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a [H, W, 3] uint8 image, got shape {image.shape} dtype {image.dtype}")
    height, width = image.shape[:2]
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
                     + chunk(b"IEND", b""))
    return path


def colormap(values: np.ndarray) -> np.ndarray:
    """``[H, W]`` values in [0, 1] -> ``[H, W, 3]`` uint8 colours."""
    scaled = np.clip(values, 0.0, 1.0) * (len(_ANCHORS) - 1)
    low = np.floor(scaled).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (scaled - low)[..., None]
    return (_ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac).round().astype(np.uint8)


def spectrogram_image(wav: np.ndarray | torch.Tensor, sample_rate: int, height: int = 128, width: int = 320,
                      range_db: float = 80.0) -> np.ndarray:
    """A ``[height, width, 3]`` log-mel spectrogram picture (low frequencies at the bottom) of a clip."""
    wav = np.nan_to_num(np.asarray(wav, dtype=np.float32)).reshape(-1, np.shape(wav)[-1]).mean(0)
    x = dsp.to_analysis_rate(wav, sample_rate)
    mel_db = 10.0 * torch.log10(dsp.mel_matrix() @ dsp.stft_power(x) + dsp.EPS)  # [64, T]
    floor = 10.0 * np.log10(dsp.EPS)  # the level of digital silence
    top = max(float(mel_db.max()), floor + range_db)  # so that a silent clip stays dark instead of scaled up
    values = ((mel_db - (top - range_db)) / range_db).clamp(0.0, 1.0).numpy()
    rows = np.linspace(0, values.shape[0] - 1, height).round().astype(int)[::-1]
    cols = np.linspace(0, values.shape[1] - 1, width).round().astype(int)
    return colormap(values[rows][:, cols])

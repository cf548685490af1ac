"""The instrument-family detector: a small CNN over log-mel spectrograms, trained here on FluidR3 renders of the
music set (:mod:`tokenlm.eval.instrument_train`) and shipped as ``tokenlm/assets/instrument_family``. It scores
the General MIDI families that play melodies (piano, chromatic percussion, organ, guitar, bass, strings,
ensemble, brass, reed, pipe, synth lead, synth pad) and whether drums play.

A clip is cut into windows of :data:`WINDOW_S` seconds (hop half a window); the window logits are averaged.

Example::

    detector = InstrumentDetector.from_pretrained()          # the shipped asset
    result = detector.detect(wav, 16000)
    result.family, result.drums, result.family_probs["piano"]
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tokenlm.common.assets import ASSETS_DIR
from tokenlm.eval import dsp

ASSET = ASSETS_DIR / "instrument_family"
WINDOW_S = 2.0
FRAMES_PER_WINDOW = int(WINDOW_S * dsp.ANALYSIS_RATE / dsp.HOP)  # 200


def log_mel_frames(wav: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``[n_mels, T]`` log-mel (dB, 10 ms hop) of a clip, its level removed (the clip's maximum is 0 dB, floored
    at -80 dB), so the detector judges timbre, not loudness."""
    x = dsp.to_analysis_rate(wav, sample_rate)
    mel = dsp.mel_matrix() @ dsp.stft_power(x)  # [64, T]
    db = 10.0 * torch.log10(mel + dsp.EPS)
    db = db - db.max()
    return db.clamp(min=-80.0) / 20.0 + 2.0  # about [-2, 2]


def windows(features: torch.Tensor, frames: int = FRAMES_PER_WINDOW) -> torch.Tensor:
    """``[W, 1, n_mels, frames]`` windows with a hop of half a window (the clip padded with its floor if short)."""
    total = features.shape[1]
    if total < frames:
        features = torch.nn.functional.pad(features, (0, frames - total), value=float(features.min()))
        total = frames
    starts = list(range(0, total - frames + 1, frames // 2))
    if starts[-1] != total - frames:
        starts.append(total - frames)
    return torch.stack([features[:, s:s + frames] for s in starts])[:, None]


class InstrumentNet(nn.Module):
    """Four conv blocks (3x3, batch norm, ReLU, 2x2 max pool) over ``[B, 1, n_mels, T]``, mean + max pooling over
    time, a linear layer to ``len(families)`` family logits and one drums logit."""

    def __init__(self, families: tuple[str, ...], n_mels: int = dsp.N_MELS, width: int = 16,
                 centre_bands: bool = False) -> None:
        super().__init__()
        self.families = tuple(families)
        self.width = int(width)
        self.centre_bands = bool(centre_bands)
        channels = [1, width, 2 * width, 4 * width, 6 * width]
        blocks = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        pooled = channels[-1] * (n_mels // 16)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(2 * pooled, len(self.families) + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, n_mels, T]`` -> ``[B, families + 1]`` logits (the last is drums). With ``centre_bands`` each mel
        band's mean over the window is removed first: a fixed equaliser (a SoundFont's or a room's colour) then
        changes nothing, and the net judges how the spectrum moves."""
        if self.centre_bands:
            x = x - x.mean(dim=-1, keepdim=True)
        h = self.features(x)  # [B, C, n_mels / 16, T / 16]
        h = h.flatten(1, 2)  # [B, C * F', T']
        pooled = torch.cat([h.mean(-1), h.amax(-1)], dim=1)
        return self.head(self.dropout(pooled))


@dataclass
class InstrumentResult:
    """The detected family (top-1), every family's probability, and drums."""

    family: str
    family_probs: dict[str, float]
    drums: bool
    drums_prob: float


class InstrumentDetector:
    """Loads an :class:`InstrumentNet` folder (``config.json`` + ``model.safetensors``) and detects families."""

    def __init__(self, net: InstrumentNet, drums_threshold: float = 0.5) -> None:
        self.net = net.eval()
        self.drums_threshold = drums_threshold

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> InstrumentDetector:
        """The detector saved in ``path`` (default: the shipped asset)."""
        from safetensors.torch import load_file

        folder = Path(path) if path is not None else ASSET
        config_path, weights = folder / "config.json", folder / "model.safetensors"
        if not config_path.is_file() or not weights.is_file():
            raise FileNotFoundError(f"{folder} is not an instrument-family detector folder: it needs config.json "
                                    "and model.safetensors (train one with python -m tokenlm.eval.instrument_train)")
        config = json.loads(config_path.read_text())
        net = InstrumentNet(tuple(config["families"]), width=int(config.get("width", 16)),
                            centre_bands=bool(config.get("centre_bands", False)))
        net.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
        return cls(net, float(config.get("drums_threshold", 0.5)))

    def save_pretrained(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``path``."""
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"families": list(self.net.families), "width": self.net.width, "centre_bands": self.net.centre_bands,
                  "drums_threshold": self.drums_threshold, "window_s": WINDOW_S, **(extra or {})}
        save_file({k: v.detach().contiguous() for k, v in self.net.state_dict().items()},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        return folder

    @torch.no_grad()
    def logits(self, wav: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``[families + 1]`` mean window logits of one clip."""
        return self.net(windows(log_mel_frames(wav, sample_rate))).mean(0)

    def detect(self, wav: np.ndarray | torch.Tensor, sample_rate: int) -> InstrumentResult:
        """The family and drums of one clip (``[N]`` or ``[C, N]``)."""
        logits = self.logits(wav, sample_rate)
        probs = torch.sigmoid(logits)
        families = self.net.families
        best = int(logits[: len(families)].argmax())
        drums_prob = float(probs[-1])
        return InstrumentResult(families[best], {f: float(p) for f, p in zip(families, probs[:-1], strict=True)},
                                drums_prob >= self.drums_threshold, drums_prob)


@functools.lru_cache(maxsize=1)
def shipped_detector() -> InstrumentDetector:
    """The shipped detector, loaded once per process."""
    return InstrumentDetector.from_pretrained()

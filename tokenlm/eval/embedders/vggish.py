"""VGGish (Hershey et al., 2017) in PyTorch, loading the state dict of the torchvggish port
(``vggish-10086976.pth``) from a local folder. Embeddings are the 128-d outputs for each 0.96 s patch,
before PCA, as the Fréchet Audio Distance uses them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers.audio_utils import mel_filter_bank

from tokenlm.eval.embedders.base import AudioEmbedder, find_weights

SAMPLE_RATE = 16000
WINDOW, HOP, FFT = 400, 160, 512  # 25 ms windows, 10 ms hop
PATCH = 96  # frames per example (0.96 s)
N_MELS = 64
LOG_OFFSET = 0.01
_CONV_INDICES = (0, 3, 6, 8, 11, 13)
_POOL_AFTER = (0, 1, 3, 5)  # conv positions followed by 2x2 max pooling


class VGGish(nn.Module):
    """The VGGish network; widths are arguments so small copies can be built (defaults: the real model)."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 256, 512, 512),
                 hidden: tuple[int, ...] = (4096, 4096, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for position, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU(inplace=True)]
            if position in _POOL_AFTER:
                layers.append(nn.MaxPool2d(2, 2))
            channels = width
        self.features = nn.Sequential(*layers)
        sizes = (channels * (PATCH // 16) * (N_MELS // 16), *hidden)
        linear: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            linear += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.embeddings = nn.Sequential(*linear)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """``[B, 1, 96, 64]`` log-mel patches -> ``[B, 128]``."""
        x = self.features(patches)  # [B, C, 6, 4]
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TensorFlow's NHWC flattening order
        return self.embeddings(x)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> VGGish:
        """Build with the widths the weights have and load them strictly."""
        widths = tuple(int(state[f"features.{i}.weight"].shape[0]) for i in _CONV_INDICES)
        hidden = tuple(int(state[f"embeddings.{i}.weight"].shape[0]) for i in (0, 2, 4))
        model = cls(widths, hidden)
        model.load_state_dict(state, strict=True)
        return model.eval()


def log_mel_patches(wav: torch.Tensor) -> torch.Tensor:
    """VGGish's front end: ``[N]`` audio at 16 kHz -> ``[P, 1, 96, 64]`` log-mel patches (magnitude STFT of
    25 ms periodic-Hann windows every 10 ms, 64 HTK mel bands 125-7500 Hz, log(mel + 0.01)); a clip shorter
    than one patch is zero-padded to one."""
    if wav.numel() < WINDOW:
        wav = torch.nn.functional.pad(wav, (0, WINDOW - wav.numel()))
    frames = wav.unfold(0, WINDOW, HOP)  # [T, 400]
    window = torch.hann_window(WINDOW, periodic=True)
    magnitude = torch.fft.rfft(frames * window, FFT).abs()  # [T, 257]
    bank = mel_filter_bank(FFT // 2 + 1, N_MELS, 125.0, 7500.0, SAMPLE_RATE, norm=None, mel_scale="htk",
                           triangularize_in_mel_space=True)
    mel = torch.log(magnitude @ torch.from_numpy(bank.astype(np.float32)) + LOG_OFFSET)  # [T, 64]
    count = max(1, mel.shape[0] // PATCH)
    if mel.shape[0] < PATCH:
        mel = torch.nn.functional.pad(mel, (0, 0, 0, PATCH - mel.shape[0]))
    return mel[: count * PATCH].reshape(count, 1, PATCH, N_MELS)


class VGGishEmbedder(AudioEmbedder):
    """``[P, 128]`` VGGish embeddings, one per 0.96 s patch."""

    name = "vggish"
    sample_rate = SAMPLE_RATE

    def __init__(self, model: VGGish) -> None:
        self.model = model.eval()

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> VGGishEmbedder:
        """Load ``vggish*.pth`` (the torchvggish state dict) from ``directory``."""
        path = find_weights(directory, ("vggish*.pth", "*.pth"), "VGGish")
        return cls(VGGish.from_state_dict(torch.load(path, map_location="cpu", weights_only=True)))

    @torch.no_grad()
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        return self.model(log_mel_patches(wav))

"""PANNs CNN14 (Kong et al., 2020) in PyTorch, loading ``Cnn14*.pth`` checkpoints (a dict whose ``"model"``
holds the state dict) from a local folder: 2048-d clip embeddings for FAD and 527 AudioSet logits for KL
and the Inception Score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers.audio_utils import mel_filter_bank

from tokenlm.eval.embedders.base import AudioClassifier, AudioEmbedder, find_weights

SAMPLE_RATE = 32000
N_FFT, HOP, N_MELS, FMIN, FMAX = 1024, 320, 64, 50.0, 14000.0


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and ReLU, then 2x2 average pooling (or none)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.bn2 = nn.BatchNorm2d(channels_out)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return nn.functional.avg_pool2d(x, pool) if pool != (1, 1) else x


class Cnn14(nn.Module):
    """CNN14 on 64-band log-mel spectrograms at 32 kHz; widths are arguments so small copies can be built."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048), embedding: int = 2048,
                 classes: int = 527) -> None:
        super().__init__()
        bank = mel_filter_bank(N_FFT // 2 + 1, N_MELS, FMIN, FMAX, SAMPLE_RATE, norm="slaney", mel_scale="slaney")
        self.register_buffer("mel_weights", torch.from_numpy(bank.astype(np.float32)), persistent=False)  # [F, 64]
        self.bn0 = nn.BatchNorm2d(N_MELS)
        channels = (1, *widths)
        for index in range(len(widths)):
            setattr(self, f"conv_block{index + 1}", ConvBlock(channels[index], channels[index + 1]))
        self.blocks = len(widths)
        self.fc1 = nn.Linear(widths[-1], embedding)
        self.fc_audioset = nn.Linear(embedding, classes)

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` audio -> ``[B, 1, T, 64]`` log-mel (power, 10 log10, floor 1e-10), centred reflect frames."""
        spec = torch.stft(wav, N_FFT, HOP, window=torch.hann_window(N_FFT), center=True, pad_mode="reflect",
                          return_complex=True)
        power = spec.abs().square().transpose(1, 2)  # [B, T, F]
        return (10.0 * torch.log10((power @ self.mel_weights).clamp(min=1e-10)))[:, None]

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, N]`` audio -> (embedding ``[B, 2048]``, logits ``[B, 527]``)."""
        x = self.log_mel(wav)  # [B, 1, T, M]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for index in range(1, self.blocks + 1):
            x = getattr(self, f"conv_block{index}")(x, (2, 2) if index < self.blocks else (1, 1))
        x = x.mean(dim=3)  # [B, C, T]
        x = x.max(dim=2).values + x.mean(dim=2)
        embedding = torch.relu(self.fc1(x))
        return embedding, self.fc_audioset(embedding)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> Cnn14:
        """Build with the widths the weights have; the checkpoint's own mel matrix replaces the computed one."""
        blocks = sorted({int(k.split(".")[0][len("conv_block"):]) for k in state if k.startswith("conv_block")})
        widths = tuple(int(state[f"conv_block{i}.conv1.weight"].shape[0]) for i in blocks)
        model = cls(widths, int(state["fc1.weight"].shape[0]), int(state["fc_audioset.weight"].shape[0]))
        weights = {k: v for k, v in state.items() if not k.startswith(("spectrogram_extractor.", "logmel_extractor."))}
        model.load_state_dict(weights, strict=True)
        if "logmel_extractor.melW" in state:
            model.mel_weights = state["logmel_extractor.melW"].float()
        return model.eval()


def load_cnn14(directory: str | Path) -> Cnn14:
    """CNN14 from the ``Cnn14*.pth`` checkpoint in ``directory``."""
    path = find_weights(directory, ("Cnn14*.pth", "*.pth"), "PANNs CNN14")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return Cnn14.from_state_dict(checkpoint.get("model", checkpoint))


class PannsEmbedder(AudioEmbedder, AudioClassifier):
    """One 2048-d CNN14 embedding per clip (``[1, 2048]``) and its 527 AudioSet logits."""

    name = "panns"
    sample_rate = SAMPLE_RATE

    def __init__(self, model: Cnn14) -> None:
        self.model = model.eval()

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> PannsEmbedder:
        return cls(load_cnn14(directory))

    @torch.no_grad()
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        return self.model(wav[None])[0]

    @torch.no_grad()
    def logits(self, wav: torch.Tensor) -> torch.Tensor:
        return self.model(wav[None])[1][0]

"""EnCodec as a :class:`~tokenlm.codecs.base.Codec`, on top of transformers' ``EncodecModel``.

Example::

    codec = EncodecCodec.from_config(tiny_encodec_config(), seed=0)
    codes = codec.encode(torch.randn(2, 1, 16000))  # [2, 4, 50]
    wav = codec.decode(codes)  # [2, 1, 16000]
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from transformers import EncodecConfig, EncodecModel

from tokenlm.codecs.base import Codec


def tiny_encodec_config(
    sample_rate: int = 16000,
    channels: int = 1,
    hidden_size: int = 32,
    num_filters: int = 4,
    upsampling_ratios: tuple[int, ...] = (8, 5, 4, 2),
    codebook_size: int = 128,
    num_codebooks: int = 4,
) -> dict[str, Any]:
    """A very small EnCodec config (``EncodecConfig`` keyword arguments) for tests and toy models.

    Defaults: 16 kHz mono, hop 320 (50 frames per second), 4 codebooks of 128 entries at its only
    bandwidth (1.4 kbps), no chunking and no normalisation; 1 s of audio encodes and decodes in a few
    milliseconds on CPU.
    """
    hop = math.prod(upsampling_ratios)
    bits = math.ceil(math.log2(codebook_size))
    bits_per_codebook = bits * math.ceil(sample_rate / hop)  # what EncodecModel uses to count codebooks
    bandwidth = num_codebooks * bits_per_codebook / 1000
    while math.floor(bandwidth * 1000 / bits_per_codebook) < num_codebooks:  # float rounding fell short
        bandwidth = math.nextafter(bandwidth, math.inf)
    return {
        "sampling_rate": sample_rate,
        "audio_channels": channels,
        "target_bandwidths": [bandwidth],
        "hidden_size": hidden_size,
        "num_filters": num_filters,
        "num_residual_layers": 1,
        "upsampling_ratios": list(upsampling_ratios),
        "num_lstm_layers": 1,
        "use_causal_conv": False,
        "codebook_size": codebook_size,
        "normalize": False,
        "chunk_length_s": None,
        "overlap": None,
    }


def _config_from(config: dict[str, Any] | EncodecConfig) -> EncodecConfig:
    """An ``EncodecConfig`` from a config or its keyword dict."""
    if isinstance(config, EncodecConfig):
        return config
    return EncodecConfig(**{k: v for k, v in config.items() if k != "model_type"})


@torch.no_grad()
def _init_codebooks(model: EncodecModel, num_frames: int = 256) -> None:
    """Fill the RVQ codebooks, which ``EncodecModel`` initialises to zeros (so every code would be 0).

    Each codebook takes its entries from the residuals, at that stage, of the encoder's latents of a probe
    signal (noise plus a tone under a random loudness envelope), like a k-means++-style seeding. Uses the
    global RNG (seeded by the caller).
    """
    config = model.config
    hop = config.hop_length
    envelope = torch.rand(1, 1, num_frames).pow(2).repeat_interleave(hop, dim=-1)  # [1, 1, n]
    time = torch.arange(num_frames * hop) / config.sampling_rate  # [n] seconds
    low, high, duration = 40.0, config.sampling_rate / 4, num_frames * hop / config.sampling_rate
    tone = torch.sin(2 * math.pi * (low * time + (high - low) * time.pow(2) / (2 * duration)))  # [n] chirp
    noise = torch.randn(1, config.audio_channels, num_frames * hop)  # [1, C, n]
    probe = envelope * (0.5 * noise + 0.5 * tone)  # [1, C, n]
    residual = model.encoder(probe)[0].T  # [T, D]
    for layer in model.quantizer.layers:
        codebook = layer.codebook
        picks = torch.randint(residual.shape[0], (config.codebook_size,))
        jitter = 0.05 * residual.std() * torch.randn(config.codebook_size, residual.shape[1])
        embed = residual[picks] + jitter  # [card, D]
        codebook.embed.copy_(embed)
        codebook.embed_avg.copy_(embed)
        codebook.cluster_size.fill_(1.0)
        residual = residual - codebook.decode(codebook.encode(residual))


class EncodecCodec(Codec):
    """EnCodec (transformers' ``EncodecModel``) at one fixed bandwidth.

    ``codes`` are ``[B, K, T]`` with ``K = num_codebooks`` (set by the bandwidth) and ``T = ceil(N / hop)``;
    latents are the encoder output before quantisation, ``[B, hidden_size, T]``. Chunked or normalised
    models (such as ``encodec_48khz``) are rejected.
    """

    kind = "encodec"

    def __init__(self, model: EncodecModel, bandwidth: float | None = None) -> None:
        super().__init__()
        config = model.config
        if config.chunk_length_s is not None or config.normalize:
            raise ValueError(
                "chunked EnCodec models are not supported yet (config has chunk_length_s="
                f"{config.chunk_length_s}, normalize={config.normalize}); use an unchunked model such as "
                "the 24 kHz or the 32 kHz MusicGen codec"
            )
        bandwidths = [float(b) for b in config.target_bandwidths]
        if bandwidth is None:
            bandwidth = bandwidths[0]
        matches = [b for b in bandwidths if math.isclose(b, float(bandwidth), rel_tol=1e-6)]
        if not matches:
            raise ValueError(f"bandwidth {bandwidth} is not one of config.target_bandwidths {bandwidths}")
        self.model = model.eval()
        self.bandwidth = matches[0]
        self._num_codebooks = model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth)

    # ----------------------------------------------------------------------------------------- construction

    @classmethod
    def from_config(
        cls, config: dict[str, Any] | EncodecConfig, bandwidth: float | None = None, seed: int | None = None
    ) -> EncodecCodec:
        """A randomly initialised codec (weights and codebooks) from an EnCodec config.

        With ``seed`` the result is reproducible and the global RNG state is left untouched.
        """
        encodec_config = _config_from(config)
        rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with rng:
            if seed is not None:
                torch.manual_seed(seed)
            model = EncodecModel(encodec_config)
            _init_codebooks(model)
        return cls(model, bandwidth)

    @classmethod
    def from_pretrained(cls, directory: str | Path, bandwidth: float | None = None) -> EncodecCodec:
        """Load from a local Hugging Face folder (``config.json``, safetensors); never downloads."""
        directory = Path(directory)
        config_path = directory / "config.json"
        if not directory.is_dir():
            raise FileNotFoundError(f"EnCodec folder not found: '{directory}'")
        if not config_path.is_file():
            raise FileNotFoundError(f"no config.json in EnCodec folder '{directory}'")
        try:
            model_type = json.loads(config_path.read_text()).get("model_type")
        except (json.JSONDecodeError, AttributeError) as error:
            raise ValueError(f"could not parse EnCodec config '{config_path}': {error}") from error
        if model_type != "encodec":
            raise ValueError(f"'{config_path}' describes a {model_type!r} model, not an 'encodec' model")
        model = EncodecModel.from_pretrained(directory, local_files_only=True)
        return cls(model, bandwidth)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (Hugging Face format)."""
        self.model.save_pretrained(directory)

    def config(self) -> dict[str, Any]:
        """``{"kind": "encodec", "bandwidth": ...}`` for a checkpoint's ``config.json``."""
        return {"kind": self.kind, "bandwidth": self.bandwidth}

    # ------------------------------------------------------------------------------------------- properties

    @property
    def sample_rate(self) -> int:
        """Audio sample rate in Hz."""
        return int(self.model.config.sampling_rate)

    @property
    def channels(self) -> int:
        """Audio channels (``config.audio_channels``)."""
        return int(self.model.config.audio_channels)

    @property
    def hop_length(self) -> int:
        """Audio samples per code frame."""
        return int(self.model.config.hop_length)

    @property
    def frame_rate(self) -> float:
        """Code frames per second, ``sample_rate / hop_length``."""
        return self.sample_rate / self.hop_length

    @property
    def num_codebooks(self) -> int:
        """K, the codebooks used at :attr:`bandwidth`."""
        return self._num_codebooks

    @property
    def cardinality(self) -> int:
        """Entries per codebook."""
        return int(self.model.config.codebook_size)

    @property
    def latent_dim(self) -> int:
        """D, channels of the continuous latent."""
        return int(self.model.config.hidden_size)

    # --------------------------------------------------------------------------------------------- encoding

    def _prepare_wav(self, wav: torch.Tensor) -> torch.Tensor:
        """Check a ``[B, C, N]`` waveform and move it to the model's device and dtype."""
        if wav.dim() != 3:
            raise ValueError(f"expected a waveform shaped [B, C, N], got shape {tuple(wav.shape)}")
        if wav.shape[1] != self.channels:
            raise ValueError(f"waveform has {wav.shape[1]} channels but the codec takes {self.channels}")
        if wav.shape[-1] == 0:
            raise ValueError("cannot encode an empty waveform (N = 0)")
        param = next(self.model.parameters())
        return wav.to(device=param.device, dtype=param.dtype)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, C, N]`` waveform -> ``[B, K, ceil(N / hop)]`` int64 codes."""
        wav = self._prepare_wav(wav)
        out = self.model.encode(wav, bandwidth=self.bandwidth, return_dict=True)
        return out.audio_codes[0]  # [1, B, K, T] (one chunk) -> [B, K, T]

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, K, T]`` codes -> ``[B, C, T * hop]`` float waveform."""
        if codes.dim() != 3 or codes.shape[1] != self.num_codebooks:
            shape = tuple(codes.shape)
            raise ValueError(f"expected codes shaped [B, K={self.num_codebooks}, T], got shape {shape}")
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ValueError(f"codes must be an integer tensor, got dtype {codes.dtype}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.cardinality):
            low, high = int(codes.min()), int(codes.max())
            raise ValueError(f"codes must lie in [0, {self.cardinality}), got values in [{low}, {high}]")
        codes = codes.to(device=next(self.model.parameters()).device, dtype=torch.long)
        out = self.model.decode(codes[None], [None], return_dict=True)  # codes as [1 chunk, B, K, T]
        return out.audio_values  # [B, C, T * hop]

    @torch.no_grad()
    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, C, N]`` waveform -> ``[B, D, ceil(N / hop)]`` encoder output before quantisation."""
        return self.model.encoder(self._prepare_wav(wav))

    @torch.no_grad()
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """``[B, D, T]`` continuous latent -> ``[B, C, T * hop]`` waveform (the decoder alone)."""
        if latent.dim() != 3 or latent.shape[1] != self.latent_dim:
            shape = tuple(latent.shape)
            raise ValueError(f"expected a latent shaped [B, D={self.latent_dim}, T], got shape {shape}")
        param = next(self.model.parameters())
        return self.model.decoder(latent.to(device=param.device, dtype=param.dtype))

"""EnCodec as a :class:`~tokenlm.codecs.base.Codec`, on top of transformers' ``EncodecModel``.

Example::

    codec = EncodecCodec.from_config(tiny_encodec_config(), seed=0)
    codes = codec.encode(torch.randn(2, 1, 16000))  # [2, 4, 50]
    wav = codec.decode(codes)  # [2, 1, 16000]

Chunked or normalised models (``encodec_48khz``: 1 s chunks overlapping by 1 %, each scaled to unit loudness) code
audio as a list of frames ``(codes [B, K, T], scale [B, 1] | None)``, one per chunk::

    frames = codec.encode_frames(wav)  # [(codes, scale), ...]
    wav = codec.decode_frames(frames)  # overlap-added, [B, C, N']
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import EncodecConfig, EncodecModel

from tokenlm.codecs.base import Codec

#: one coded chunk: ``codes`` ``[B, K, T]`` int64 and the chunk's loudness ``scale`` ``[B, 1]`` (None unless normalised)
EncodedFrame = tuple[torch.Tensor, torch.Tensor | None]


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


def check_codebooks(model: EncodecModel, directory: str | Path) -> None:
    """Refuse a model whose RVQ codebooks were never learnt: transformers fills missing codebook tensors with
    zeros (every code would decode to the same vector), so a folder without them, or with collapsed ones, is an
    error that names the folder and the codebook."""
    for index, layer in enumerate(model.quantizer.layers):
        embed = layer.codebook.embed  # [card, D]
        if not torch.isfinite(embed).all():
            raise ValueError(f"EnCodec folder '{directory}': codebook {index} holds NaN or infinite entries")
        if embed.shape[0] > 1 and bool((embed == embed[:1]).all()):
            raise ValueError(
                f"EnCodec folder '{directory}': codebook {index} is untrained or missing (all its "
                f"{embed.shape[0]} entries are equal); its model.safetensors must hold "
                f"quantizer.layers.{index}.codebook.embed from a trained codec"
            )


class EncodecCodec(Codec):
    """EnCodec (transformers' ``EncodecModel``) at one fixed bandwidth.

    ``codes`` are ``[B, K, T]`` with ``K = num_codebooks`` (set by the bandwidth) and ``T = ceil(N / hop)``;
    latents are the encoder output before quantisation, ``[B, hidden_size, T]``.

    Chunked or normalised models (such as ``encodec_48khz``, :attr:`framed` true) load too, but code audio only
    through :meth:`encode_frames` / :meth:`decode_frames`: their per-chunk loudness scales are not part of a token
    sequence and their overlapping chunks do not form one, so :meth:`encode`, :meth:`decode` and the latent methods
    (what the LM and diffusion backends use) refuse them.
    """

    kind = "encodec"

    def __init__(self, model: EncodecModel, bandwidth: float | None = None) -> None:
        super().__init__()
        config = model.config
        if config.chunk_length_s is not None and config.overlap is None:
            raise ValueError(
                f"chunked EnCodec config (chunk_length_s={config.chunk_length_s}) needs an overlap (e.g. 0.01), "
                "got overlap=None"
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
        check_codebooks(model, directory)
        return cls(model, bandwidth)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (Hugging Face format), without
        transformers' per-shard progress bar (it would redraw into training logs)."""
        from tokenlm.common.hf import quiet_hf_loading

        dtype = self.decoder_dtype
        self.model.decoder.float()  # checkpoints are float32 whatever the inference dtype (bf16 -> fp32 is exact)
        try:
            with quiet_hf_loading():
                self.model.save_pretrained(directory)
        finally:
            self.model.decoder.to(dtype)

    @property
    def decoder_dtype(self) -> torch.dtype:
        """The dtype of the decoder's weights (bf16 after :meth:`set_decoder_dtype`; float32 otherwise)."""
        return next(self.model.decoder.parameters()).dtype

    def set_decoder_dtype(self, dtype: torch.dtype) -> bool:
        """Run :meth:`decode` and :meth:`decode_latent` in ``dtype`` (float32 or bfloat16): True when set.

        On a CPU with native bf16 it halves the decode time (2-core AMD EPYC: 10 s of 32 kHz audio through
        MusicGen's EnCodec shape, 0.64 s against 1.40 s; 40 held-out 4 s clips through the shipped 16 kHz codec,
        0.75 s against 1.40 s). What bf16 changes is far below the codec's own error: on those 40 clips the
        difference from the float32 waveform has a median level of -70 dBFS (at most -58 dBFS; median 36 dB below
        the clip), where the codec's round trip itself is about 2 dB below the clip. The encoder, the quantiser
        and the output waveform stay float32. Chunked or normalising models (encodec_48khz) decode through
        transformers' own loop and keep float32 (False).
        """
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"the decoder runs in float32 or bfloat16, got {dtype}")
        if self.framed and dtype != torch.float32:
            return False
        self.model.decoder.to(dtype)
        return True

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

    @property
    def framed(self) -> bool:
        """True for chunked or normalised models, which code audio only with :meth:`encode_frames`."""
        config = self.model.config
        return config.chunk_length_s is not None or bool(config.normalize)

    def _require_unframed(self, method: str) -> None:
        """Refuse ``method`` (one of the token-sequence / latent methods) on a chunked or normalised model."""
        if not self.framed:
            return
        config = self.model.config
        raise ValueError(
            f"EncodecCodec.{method} needs an EnCodec model without chunking or normalisation, but this one has "
            f"chunk_length_s={config.chunk_length_s}, overlap={config.overlap}, normalize={config.normalize} "
            "(e.g. encodec_48khz): its per-chunk loudness scales are not part of [B, K, T] token sequences and "
            "overlapping chunks do not form one sequence; use encode_frames / decode_frames, or an unchunked, "
            "unnormalised codec (24 kHz, or the 32 kHz MusicGen codec) for the LM and diffusion backends"
        )

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

    def _check_codes(self, codes: torch.Tensor, what: str = "codes") -> torch.Tensor:
        """Check ``[B, K, T]`` integer codes in ``[0, cardinality)``; returns them as int64 on the model's device."""
        if codes.dim() != 3 or codes.shape[1] != self.num_codebooks:
            shape = tuple(codes.shape)
            raise ValueError(f"expected {what} shaped [B, K={self.num_codebooks}, T], got shape {shape}")
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ValueError(f"{what} must be an integer tensor, got dtype {codes.dtype}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.cardinality):
            low, high = int(codes.min()), int(codes.max())
            raise ValueError(f"{what} must lie in [0, {self.cardinality}), got values in [{low}, {high}]")
        return codes.to(device=next(self.model.parameters()).device, dtype=torch.long)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, C, N]`` waveform -> ``[B, K, ceil(N / hop)]`` int64 codes (unchunked, unnormalised models)."""
        self._require_unframed("encode")
        wav = self._prepare_wav(wav)
        out = self.model.encode(wav, bandwidth=self.bandwidth, return_dict=True)
        return out.audio_codes[0]  # [1, B, K, T] (one chunk) -> [B, K, T]

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, K, T]`` codes -> ``[B, C, T * hop]`` float waveform (unchunked, unnormalised models)."""
        self._require_unframed("decode")
        codes = self._check_codes(codes)
        if self.decoder_dtype != torch.float32:  # the quantiser in float32, the decoder in its own dtype
            return self.decode_latent(self.codes_to_latent(codes))
        out = self.model.decode(codes[None], [None], return_dict=True)  # codes as [1 chunk, B, K, T]
        return out.audio_values  # [B, C, T * hop]

    @torch.no_grad()
    def encode_frames(self, wav: torch.Tensor) -> list[EncodedFrame]:
        """``[B, C, N]`` waveform -> one ``(codes [B, K, T_i], scale [B, 1] | None)`` per chunk, any model.

        Exactly what transformers' ``EncodecModel.encode`` computes (and the ``encodec`` package's ``encode``):
        chunks of ``chunk_length`` samples every ``chunk_stride`` samples (the whole waveform when unchunked),
        each divided by its RMS loudness ``scale`` when the model normalises (``scale`` is None otherwise). The
        last chunk may be shorter, and so may its codes.
        """
        wav = self._prepare_wav(wav)
        out = self.model.encode(wav, bandwidth=self.bandwidth, return_dict=True)
        codes = list(out.audio_codes.unbind(0))  # F x [B, K, T], the last right-padded by transformers
        pad = int(out.last_frame_pad_length or 0)
        if pad:
            codes[-1] = codes[-1][..., :-pad]
        return list(zip(codes, out.audio_scales, strict=True))

    def _check_frames(self, frames: Sequence[EncodedFrame]) -> list[EncodedFrame]:
        """Check :meth:`encode_frames` output: chunk count, code shapes and lengths, scales present iff normalised."""
        if len(frames) == 0:
            raise ValueError("decode_frames needs at least one (codes, scale) frame, got none")
        if self.model.config.chunk_length is None and len(frames) != 1:
            raise ValueError(f"an unchunked EnCodec model decodes exactly one frame, got {len(frames)}")
        checked = []
        for i, frame in enumerate(frames):
            if not isinstance(frame, (tuple, list)) or len(frame) != 2:
                raise ValueError(f"frame {i} must be a (codes, scale) pair, got {type(frame).__name__}")
            codes = self._check_codes(frame[0], f"frame {i} codes")
            checked.append((codes, self._check_scale(frame[1], codes.shape[0], i)))
        first = checked[0][0].shape
        for i, (codes, _) in enumerate(checked[1:], start=1):
            last = i == len(checked) - 1
            if codes.shape[0] != first[0] or (codes.shape[-1] > first[-1] if last else codes.shape[-1] != first[-1]):
                raise ValueError(
                    f"frame {i} codes have shape {tuple(codes.shape)} but frame 0 has {tuple(first)}: every frame "
                    "needs the same batch and length (the last one may be shorter)"
                )
        return checked

    def _check_scale(self, scale: torch.Tensor | None, batch: int, index: int) -> torch.Tensor | None:
        """A frame's ``[B, 1]`` scale: required by normalising models, refused by the others."""
        if not self.model.config.normalize:
            if scale is not None:
                raise ValueError(f"frame {index} has a scale but this EnCodec model does not normalise (use None)")
            return None
        if not isinstance(scale, torch.Tensor) or scale.numel() != batch or not scale.is_floating_point():
            got = tuple(scale.shape) if isinstance(scale, torch.Tensor) else scale
            raise ValueError(f"frame {index} needs a float scale shaped [B={batch}, 1] (normalised model), got {got}")
        param = next(self.model.parameters())
        return scale.reshape(batch, 1).to(device=param.device, dtype=param.dtype)

    @torch.no_grad()
    def decode_frames(self, frames: Sequence[EncodedFrame]) -> torch.Tensor:
        """:meth:`encode_frames` output -> ``[B, C, N']`` waveform, chunks overlap-added as transformers does.

        ``N' = chunk_stride * (F - 1) + T_last * hop`` for F chunked frames (``T * hop`` when unchunked); trim it to
        the input length.
        """
        checked = self._check_frames(frames)
        length = checked[0][0].shape[-1]
        pad = length - checked[-1][0].shape[-1]
        codes = [c for c, _ in checked]
        codes[-1] = torch.nn.functional.pad(codes[-1], (0, pad))  # transformers stacks equal-length frames
        stacked = torch.stack(codes)  # [F, B, K, T]
        scales = [scale for _, scale in checked]
        out = self.model.decode(stacked, scales, return_dict=True, last_frame_pad_length=pad)
        return out.audio_values  # [B, C, N']

    @torch.no_grad()
    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, C, N]`` waveform -> ``[B, D, ceil(N / hop)]`` encoder output before quantisation."""
        self._require_unframed("encode_latent")
        return self.model.encoder(self._prepare_wav(wav))

    @torch.no_grad()
    def codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, K, T]`` codes -> ``[B, D, T]`` quantised latent: the sum of the codebook vectors the residual
        quantiser picked (what :meth:`decode` feeds the decoder, so ``decode_latent`` of it equals ``decode``)."""
        self._require_unframed("codes_to_latent")
        codes = self._check_codes(codes)
        return self.model.quantizer.decode(codes.transpose(0, 1))  # codes as [K, B, T] -> [B, D, T]

    @torch.no_grad()
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """``[B, D, T]`` continuous latent -> ``[B, C, T * hop]`` waveform (the decoder alone)."""
        self._require_unframed("decode_latent")
        if latent.dim() != 3 or latent.shape[1] != self.latent_dim:
            shape = tuple(latent.shape)
            raise ValueError(f"expected a latent shaped [B, D={self.latent_dim}, T], got shape {shape}")
        param = next(self.model.decoder.parameters())
        wav = self.model.decoder(latent.to(device=param.device, dtype=param.dtype))
        return wav.float()  # float32 whatever the decoder's dtype

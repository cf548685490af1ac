"""An EnCodec-architecture codec that trains from scratch: transformers' SEANet encoder and decoder, and a residual
VQ from ``vector-quantize-pytorch`` (EMA codebooks, k-means initialisation, dead-code expiry, commitment loss,
quantizer dropout). It exports to a plain transformers ``EncodecModel`` with its learned codebooks, so the trained
codec loads through :class:`~tokenlm.codecs.EncodecCodec` like any other EnCodec.

Training schedule (one :meth:`CodecTrainee.compute_loss` call per step):

1. steps ``[0, vq_start)``: a plain autoencoder (no quantiser), so the decoder learns to make sound first; the
   encoder's latents of the last ``kmeans_batches`` of these steps are pooled;
2. at ``vq_start``: every codebook is k-means-initialised, layer by layer, on the pooled latents' residuals;
3. afterwards: residual VQ with quantizer dropout (each batch keeps the first ``k`` codebooks, ``k`` uniform in
   ``1..K``), and with probability ``latent_prob`` the decoder gets the unquantised latent instead, so it also
   serves the diffusion backend's continuous latent.

Example::

    trainee = CodecTrainee(CodecTrainingConfig(encodec=small_codec_config()))
    losses = trainee.compute_loss(wav)  # wav [B, 1, N]; {"loss", "mel", "stft", "l1", "commit", ...}
    codec = trainee.to_codec()          # an EncodecCodec with the learned codebooks
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import EncodecConfig, EncodecModel

from tokenlm.codecs.encodec import EncodecCodec
from tokenlm.codecs.training.losses import ReconstructionLoss
from tokenlm.common.checkpoint import CheckpointError, latest_checkpoint, load_weights, save_weights

TRAINEE_CONFIG = "codec_trainee.json"
TRAINEE_WEIGHTS = "codec_trainee.safetensors"


def codec_config(
    sample_rate: int = 16000,
    num_filters: int = 16,
    hidden_size: int = 64,
    upsampling_ratios: tuple[int, ...] = (8, 5, 4, 2),
    codebook_size: int = 1024,
    num_codebooks: int = 8,
    num_lstm_layers: int = 1,
    num_residual_layers: int = 1,
    use_conv_shortcut: bool = False,
) -> dict[str, Any]:
    """``EncodecConfig`` keywords of a trainable mono codec whose bandwidths are 1, 2, 4, ... codebooks.

    The bandwidths list ends with all ``num_codebooks`` (transformers counts quantizers from the last one); each
    entry is ``k * log2(codebook_size) * frame_rate / 1000`` kbps for ``k`` codebooks.
    """
    if codebook_size & (codebook_size - 1) or codebook_size < 2:
        raise ValueError(f"codebook_size must be a power of two >= 2, got {codebook_size}")
    hop = math.prod(upsampling_ratios)
    if sample_rate % hop:
        raise ValueError(f"sample_rate {sample_rate} must be a multiple of the hop {hop} (product of the ratios)")
    per_codebook = math.log2(codebook_size) * (sample_rate // hop) / 1000  # kbps
    counts = sorted({2**i for i in range(int(math.log2(num_codebooks)) + 1)} | {num_codebooks})
    return {
        "sampling_rate": sample_rate, "audio_channels": 1, "target_bandwidths": [k * per_codebook for k in counts],
        "hidden_size": hidden_size, "num_filters": num_filters, "num_residual_layers": num_residual_layers,
        "upsampling_ratios": list(upsampling_ratios), "num_lstm_layers": num_lstm_layers, "use_causal_conv": False,
        "codebook_size": codebook_size, "normalize": False, "chunk_length_s": None, "overlap": None,
        "use_conv_shortcut": use_conv_shortcut,
    }


@dataclass
class CodecTrainingConfig:
    """What :class:`CodecTrainee` builds and how it trains (stored in ``codec_trainee.json``)."""

    encodec: dict[str, Any] = field(default_factory=codec_config)
    vq_start: int = 500  # autoencoder warm-up steps before the quantiser is switched on
    kmeans_batches: int = 16  # warm-up batches whose latents initialise the codebooks
    kmeans_pool: int = 16384  # latent vectors kept for k-means
    kmeans_iters: int = 20
    decay: float = 0.99  # EMA decay of the codebooks
    threshold_ema_dead_code: float = 2.0  # codes used less than this (EMA count) are replaced from the batch
    commitment_weight: float = 1.0
    quantizer_dropout: bool = True
    latent_prob: float = 0.1  # chance that a step decodes the unquantised latent
    mel_weight: float = 1.0
    stft_weight: float = 1.0
    l1_weight: float = 1.0
    # the spectral (mel, STFT) weights ramp from 0 at step spectral_from to full at spectral_full: from the start
    # they make the decoder settle on the training set's average spectrum and ignore its latent (measured: pitch
    # 0.03 vs 0.50 after 300 steps on tones), while the time-domain L1 alone gets it phase-coherent first
    spectral_from: int = 0
    spectral_full: int = 0

    def __post_init__(self) -> None:
        if self.vq_start < self.kmeans_batches:
            raise ValueError(f"vq_start ({self.vq_start}) must be >= kmeans_batches ({self.kmeans_batches})")
        if not 0 <= self.latent_prob < 1:
            raise ValueError(f"latent_prob must be in [0, 1), got {self.latent_prob}")


def _conv_of(layer: nn.Module) -> nn.Module | None:
    """The torch convolution inside a transformers EnCodec conv wrapper (None for other layers)."""
    conv = getattr(layer, "conv", None)
    return conv if isinstance(conv, (nn.Conv1d, nn.ConvTranspose1d)) else None


@torch.no_grad()
def _scale_conv(conv: nn.Module, factor: float) -> None:
    """Multiply a convolution's effective weight by ``factor`` (its weight-norm gain when it has one)."""
    parametrizations = getattr(conv, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        parametrizations.weight.original0.mul_(factor)
    else:
        conv.weight.mul_(factor)


@torch.no_grad()
def calibrate_init(layers: list[nn.Module], probe: torch.Tensor, residual_gain: float = 0.5) -> None:
    """Data-dependent initialisation (LSUV-style) of a SEANet layer stack.

    transformers' initialisation leaves every conv shrinking its input about 2x and its biases dominating, so
    at init the decoder's output hardly depends on the latent (a 1000x loss of the input-dependent signal over the
    encoder and decoder) and training spends thousands of steps before the latent is used. Here biases start at
    zero and each conv is rescaled on ``probe`` (``[B, C, N]``) so the main path keeps its signal level and each
    residual branch adds ``residual_gain`` of it.
    """
    for layer in layers:
        for module in layer.modules():
            conv = _conv_of(module)
            if conv is not None and conv.bias is not None:
                conv.bias.zero_()
    hidden = probe
    for layer in layers:
        conv = _conv_of(layer)
        if conv is not None:
            out = layer(hidden)
            _scale_conv(conv, float(hidden.std() / out.std().clamp_min(1e-12)))
        elif hasattr(layer, "block"):  # a residual block: its last conv sets the branch's level
            convs = [m for m in layer.block if _conv_of(m) is not None]
            branch = hidden
            for module in layer.block:
                branch = module(branch)
                if module is convs[0]:
                    branch_in = hidden.std()
            _scale_conv(_conv_of(convs[-1]), float(residual_gain * branch_in / branch.std().clamp_min(1e-12)))
        hidden = layer(hidden)


class TrainingClock(nn.Module):
    """The trainee's own step counter, random state and k-means latent pool, as buffers, so checkpoints resume
    them exactly (the global RNG is not enough: a data loader re-created on resume draws from it)."""

    def __init__(self, pool_size: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("rng_state", torch.Generator().manual_seed(seed).get_state())
        self.register_buffer("pool", torch.zeros(pool_size, dim))
        self.register_buffer("pool_count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def add(self, latents: torch.Tensor) -> None:
        """Append ``[N, D]`` latent vectors, overwriting the oldest once the pool is full."""
        size = self.pool.shape[0]
        latents = latents[-size:]
        start = int(self.pool_count) % size
        index = (torch.arange(latents.shape[0], device=latents.device) + start) % size
        self.pool[index] = latents.float()
        self.pool_count += latents.shape[0]

    def pooled(self) -> torch.Tensor:
        return self.pool[: min(int(self.pool_count), self.pool.shape[0])]

    @contextlib.contextmanager
    def random_state(self) -> Iterator[None]:
        """Run the block on the clock's CPU random state (what the quantiser's k-means, dead-code expiry and
        dropout draw from), and keep the state it leaves; the caller's global state is restored afterwards."""
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng_state.cpu())
            yield
            self.rng_state.copy_(torch.get_rng_state())


class CodecTrainee(nn.Module):
    """SEANet encoder / decoder (transformers' EnCodec modules) with a trainable residual VQ."""

    name = "codec"

    def __init__(self, config: CodecTrainingConfig) -> None:
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        self.config = config
        self.encodec_config = EncodecConfig(**config.encodec)
        if self.encodec_config.normalize or self.encodec_config.chunk_length_s is not None:
            raise ValueError(
                "a trainable codec must be unchunked and unnormalised (chunk_length_s=None, normalize=False)"
            )
        model = EncodecModel(self.encodec_config)
        self.encoder, self.decoder = model.encoder, model.decoder
        calibrate_init([*self.encoder.layers, *self.decoder.layers], self._probe())
        dim = self.encodec_config.hidden_size
        self.quantizer = ResidualVQ(
            dim=dim, num_quantizers=self.encodec_config.num_quantizers, codebook_size=self.encodec_config.codebook_size,
            decay=config.decay, kmeans_init=True, kmeans_iters=config.kmeans_iters,
            threshold_ema_dead_code=config.threshold_ema_dead_code, commitment_weight=config.commitment_weight,
            quantize_dropout=config.quantizer_dropout, quantize_dropout_cutoff_index=0,
        )
        self.clock = TrainingClock(config.kmeans_pool, dim)
        self.loss = ReconstructionLoss(
            self.encodec_config.sampling_rate, config.mel_weight, config.stft_weight, config.l1_weight
        )

    def _probe(self, seconds: float = 0.5) -> torch.Tensor:
        """A ``[2, C, N]`` calibration signal: white noise and a chirp at -20 dBFS RMS (global RNG)."""
        rate, channels = self.encodec_config.sampling_rate, self.encodec_config.audio_channels
        time = torch.arange(int(seconds * rate)) / rate
        chirp = torch.sin(2 * math.pi * (100 * time + (rate / 4) * time.pow(2) / (2 * seconds)))
        noise = torch.randn(int(seconds * rate))
        signals = torch.stack([noise / noise.std(), chirp / chirp.std()]) * 0.1  # [2, N]
        return signals[:, None].expand(2, channels, -1).contiguous()

    # ------------------------------------------------------------------ what the trainer uses
    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @property
    def sample_rate(self) -> int:
        return int(self.encodec_config.sampling_rate)

    @property
    def channels(self) -> int:
        return int(self.encodec_config.audio_channels)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.encodec_config.hop_length

    @property
    def attributes(self) -> list[str]:
        """A codec learns from audio alone: no conditioning attributes."""
        return []

    @property
    def conditioning(self):
        from conditioners.provider import ConditioningProvider

        return ConditioningProvider([])

    def trainable_modules(self) -> nn.ModuleDict:
        """What the optimiser trains (encoder, decoder) and what checkpoints keep (codebooks, clock)."""
        return nn.ModuleDict(
            {"encoder": self.encoder, "decoder": self.decoder, "quantizer": self.quantizer, "clock": self.clock}
        )

    def training_inputs(self, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's waveform ``[B, C, N]`` and its valid samples ``[B, N]``."""
        if "wav" not in batch:
            raise ValueError("codec training needs audio batches, not a token cache; set data.cache=null")
        return batch["wav"].to(device, non_blocking=True), batch["mask"].to(device)

    @property
    def codebooks_ready(self) -> bool:
        """Whether every codebook has been k-means-initialised."""
        return all(bool(layer._codebook.initted) for layer in self.quantizer.layers)

    @property
    def quantizing(self) -> bool:
        """Whether the quantiser is on: in training from ``vq_start`` on; outside training once the codebooks
        exist (a validation pass during the warm-up decodes the latent, and must not initialise them)."""
        if self.training:
            return int(self.clock.step) >= self.config.vq_start
        return self.codebooks_ready

    def compute_loss(
        self, wav: torch.Tensor, mask: torch.Tensor | None = None, attributes: Any = None, dropped: Any = None,
        attribute_dropped: Any = None,
    ) -> dict[str, torch.Tensor]:
        """Reconstruction losses of ``wav`` ``[B, C, N]`` (and the commitment loss once quantising).

        In training mode this also advances the trainee's own step: warm-up latents go to the k-means pool, the
        codebooks are initialised at ``vq_start``, and the unquantised-latent draws use the global RNG.
        """
        random_state = self.clock.random_state() if self.training else contextlib.nullcontext()
        with random_state:
            return self._losses(wav)

    def _losses(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        config = self.config
        step = int(self.clock.step)
        quantizing = self.quantizing  # decided by the step before this one is counted
        latent = self.encoder(wav)  # [B, D, T]
        commit = latent.new_zeros(())
        used = latent.new_zeros(())
        if self.training:
            self.clock.step += 1
            if config.vq_start - config.kmeans_batches <= step < config.vq_start:
                self.clock.add(latent.detach().transpose(1, 2).reshape(-1, latent.shape[1]))
            if step == config.vq_start:
                self.init_codebooks()
        decode_latent = self.training and bool(torch.rand(()) < config.latent_prob)
        if quantizing and not decode_latent:
            quantized, codes, commit_losses = self.quantizer(latent.transpose(1, 2))  # [B, T, D], [B, T, K], [K]
            latent_in = quantized.transpose(1, 2)
            commit = commit_losses.sum()
            used = (codes[..., 0].flatten().unique().numel() / self.encodec_config.codebook_size) * latent.new_ones(())
        else:
            latent_in = latent
        recon = self.decoder(latent_in)[..., : wav.shape[-1]]  # [B, C, N]
        terms = self.loss(recon, wav, self.spectral_scale(step))
        return {
            "loss": terms["total"] + commit, "mel": terms["mel"].detach(), "stft": terms["stft"].detach(),
            "l1": terms["l1"].detach(), "commit": commit.detach(), "usage_q0": used,
        }

    def spectral_scale(self, step: int) -> float:
        """The factor on the spectral loss weights at ``step`` (a linear ramp; 1 outside training)."""
        start, full = self.config.spectral_from, self.config.spectral_full
        if not self.training or step >= full:
            return 1.0
        return min(1.0, max(0.0, (step - start) / max(1, full - start)))

    @torch.no_grad()
    def init_codebooks(self) -> None:
        """k-means-initialise every codebook on the pooled warm-up latents (layer k on the residual of 1..k-1)."""
        pooled = self.clock.pooled()
        if pooled.shape[0] == 0:
            raise RuntimeError("no warm-up latents were pooled before the quantiser was switched on")
        dropout = self.quantizer.quantize_dropout
        self.quantizer.quantize_dropout = False
        try:
            self.quantizer(pooled[None].to(self.device))  # the first training call runs k-means layer by layer
        finally:
            self.quantizer.quantize_dropout = dropout

    # ------------------------------------------------------------------ inference (eval mode)
    @torch.no_grad()
    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """``[B, C, N]`` -> ``[B, K, T]`` codes with the training-time quantiser (the first ``num_codebooks``)."""
        latent = self.encoder(wav)
        _, codes, _ = self.quantizer(latent.transpose(1, 2))  # [B, T, K]
        codes = codes.transpose(1, 2)
        return codes[:, :num_codebooks] if num_codebooks else codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, K, T]`` codes (any prefix of the codebooks) -> ``[B, C, T * hop]``."""
        embeds = self.quantizer.get_output_from_indices(codes.transpose(1, 2))  # [B, T, D]
        return self.decoder(embeds.transpose(1, 2))

    def codebooks(self) -> list[torch.Tensor]:
        """Each codebook's entries ``[card, D]``, in residual order."""
        return [layer._codebook.embed[0] for layer in self.quantizer.layers]

    def export_model(self) -> EncodecModel:
        """A transformers ``EncodecModel`` with these weights and learned codebooks."""
        if not self.codebooks_ready:
            raise RuntimeError("the codebooks are not initialised yet: train past solver vq_start before exporting")
        model = EncodecModel(self.encodec_config)
        model.encoder.load_state_dict(self.encoder.state_dict())
        model.decoder.load_state_dict(self.decoder.state_dict())
        for hf_layer, layer in zip(model.quantizer.layers, self.quantizer.layers, strict=True):
            codebook = hf_layer.codebook
            codebook.embed.copy_(layer._codebook.embed[0])
            codebook.embed_avg.copy_(layer._codebook.embed_avg[0])
            codebook.cluster_size.copy_(layer._codebook.cluster_size[0])
            codebook.inited.fill_(1.0)
        return model.eval()

    def to_codec(self, bandwidth: float | None = None) -> EncodecCodec:
        """The trained codec as an :class:`EncodecCodec` (default bandwidth: the first of the config's)."""
        return EncodecCodec(self.export_model(), bandwidth)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> Path:
        """The training-time folder: ``codec_trainee.json`` and ``codec_trainee.safetensors``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(self.trainable_modules(), directory / TRAINEE_WEIGHTS)
        config = {"backend": self.name, "training": dataclasses.asdict(self.config)}
        (directory / TRAINEE_CONFIG).write_text(json.dumps(config, indent=2))
        return directory

    def export_pretrained(self, directory: str | Path) -> Path:
        """The inference folder: a transformers EnCodec folder (``config.json``, ``model.safetensors``)."""
        directory = Path(directory)
        self.export_model().save_pretrained(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> CodecTrainee:
        """Load a folder written by :meth:`save_pretrained`."""
        directory = Path(directory)
        path = directory / TRAINEE_CONFIG
        if not path.is_file():
            raise CheckpointError(f"{str(directory)!r} is not a codec-training folder (no {TRAINEE_CONFIG})")
        config = json.loads(path.read_text())
        trainee = cls(CodecTrainingConfig(**config["training"]))
        load_weights(trainee.trainable_modules(), directory / TRAINEE_WEIGHTS)
        if device is not None:
            trainee.to(device)
        return trainee.eval()

    @classmethod
    def from_run(cls, run_dir: str | Path, use_ema: bool = True) -> CodecTrainee:
        """The newest training checkpoint of a codec run (``run_dir/init`` + ``checkpoints/latest``), with the
        EMA weights unless ``use_ema`` is false: for evaluating or exporting a run before it ends."""
        from safetensors.torch import load_file

        trainee = cls.from_pretrained(Path(run_dir) / "init")
        folder = latest_checkpoint(Path(run_dir))
        if folder is None:
            raise CheckpointError(f"codec run {str(run_dir)!r} has no checkpoint yet")
        parts = nn.ModuleDict({"parts": trainee.trainable_modules()})  # the trainer's module layout
        load_weights(parts, folder / "model.safetensors")
        if use_ema:
            shadow = load_file(str(folder / "ema.safetensors"))
            params = dict(parts.named_parameters())
            with torch.no_grad():
                for name, value in shadow.items():
                    params[name].copy_(value)
        return trainee.eval()

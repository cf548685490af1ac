"""The latent-diffusion backend: conditioners -> DiT over normalised codec latents -> codec decoder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from conditioners.base import Condition, Conditioner
from conditioners.dropout import DropoutDraw
from conditioners.provider import ConditioningProvider
from tokenlm.codecs import Codec
from tokenlm.common.backend import Backend, load_components
from tokenlm.common.device import autocast
from tokenlm.common.progress import progress_bar
from tokenlm.ldm.diffusion import NUM_TRAIN_TIMESTEPS, DiffusionParams, denoise, make_scheduler, v_target
from tokenlm.ldm.dit import DiT, DiTConfig
from tokenlm.ldm.latents import LatentNormalizer

#: with a conditioner for this attribute the backend works as Stable Audio does: every clip fills the fixed
#: window (padded with silence), the clip's length is a condition, generation runs the window and trims
TIMING_ATTRIBUTE = "seconds_total"


class LDMBackend(Backend):
    """Text (and metadata) to audio by latent diffusion.

    Args:
        dit: the denoiser; its ``latent_dim`` must match the codec's and its ``cond_dim`` the conditioners'.
        codec: gives the continuous latent (``encode_latent`` / ``decode_latent``).
        conditioners: one per attribute; every condition reaches the DiT through cross-attention.
        max_duration: the longest clip generated in one piece (the training window), seconds.
            With a ``seconds_total`` conditioner (timing conditioning) every clip is generated in this window
            and trimmed.
        cfg_dropout: condition dropout used in training (0: no CFG possible).
        mask_prob: masked-latent training: the probability that a training sample gets a random span to
            regenerate with the rest of its latent given as clean context (needs ``DiTConfig.context``).
        sampling: the model's own sampling defaults (e.g. ``{"steps": 25, "scheduler": "dpmpp"}``), saved with it;
            what a caller passes wins.
    """

    name = "ldm"
    sampling_parameters = ("steps", "cfg_coef", "cfg_rescale", "scheduler")
    sampling_class = DiffusionParams

    def __init__(
        self,
        dit: DiT,
        codec: Codec,
        conditioners: list[Conditioner] | None = None,
        *,
        max_duration: float = 10.0,
        cfg_dropout: float = 0.1,
        mask_prob: float = 0.0,
        sampling: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        cfg = dit.config
        latent_dim = getattr(codec, "latent_dim", cfg.latent_dim)
        if latent_dim != cfg.latent_dim:
            raise ValueError(f"the DiT denoises {cfg.latent_dim}-dim latents, the codec's latent has {latent_dim}")
        self.dit, self.codec = dit, codec
        self.conditioning = ConditioningProvider(conditioners)
        bad = {d for d in self.conditioning.output_dims if d != cfg.cond_dim}
        if bad:
            raise ValueError(f"conditioner output dims {sorted(bad)} differ from the DiT cond_dim {cfg.cond_dim}")
        if self.conditioning.attributes and not cfg.cross_attention:
            raise ValueError("the DiT reads conditions through cross-attention; build it with cross_attention=True")
        if max_duration <= 0:
            raise ValueError(f"max_duration must be > 0 seconds, got {max_duration}")
        self.max_duration, self.cfg_dropout = float(max_duration), float(cfg_dropout)
        if not 0 <= mask_prob <= 1:
            raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
        if mask_prob > 0 and not cfg.context:
            raise ValueError("masked-latent training (mask_prob > 0) needs a DiT with context input (context=True)")
        self.mask_prob = float(mask_prob)
        self.sampling_defaults = self.check_sampling_defaults(sampling)
        self.normalizer = LatentNormalizer(cfg.latent_dim)

    # ---------------------------------------------------------------- properties
    @property
    def uses_timing(self) -> bool:
        """True with timing conditioning (a ``seconds_total`` conditioner)."""
        return TIMING_ATTRIBUTE in self.conditioning.conditioners

    def with_timing(self, attributes: list[dict[str, Any]], seconds: list[float]) -> list[dict[str, Any]]:
        """The attribute dicts with ``seconds_total`` set to ``seconds`` where the caller did not give it
        (unchanged without timing conditioning)."""
        if not self.uses_timing:
            return attributes
        return [{TIMING_ATTRIBUTE: float(s), **item} for item, s in zip(attributes, seconds, strict=True)]

    # ---------------------------------------------------------------- latents
    @torch.no_grad()
    def encode_audio(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, C, N]`` at the codec rate -> normalised latent ``[B, D, T]``."""
        return self.normalizer.normalize(self.codec.encode_latent(wav.to(self.device)).float())

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Normalised latent ``[B, D, T]`` -> waveform ``[B, C, N]`` float32."""
        return self.codec.decode_latent(self.normalizer.denormalize(latent)).float()

    @torch.no_grad()
    def fit_latent_stats(self, wavs: torch.Tensor, mask: torch.Tensor | None = None, quantized: bool = False) -> None:
        """Fit the per-channel latent mean/std on training audio ``[B, C, N]`` (valid samples ``[B, N]``).

        ``quantized``: fit on the codec's quantised latent (for a model trained on a token cache).
        """
        wavs = wavs.to(self.device)
        if quantized:
            latents = self.codec.codes_to_latent(self.codec.encode(wavs)).float()  # [B, D, T]
        else:
            latents = self.codec.encode_latent(wavs).float()  # [B, D, T]
        self.normalizer.fit(latents, None if mask is None else self._frame_mask(mask.to(self.device), latents))

    @staticmethod
    def _frame_mask(sample_mask: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Valid latent frames ``[B, T]`` from valid samples ``[B, N]``: a frame is valid when its first sample is."""
        hop = sample_mask.shape[-1] / latents.shape[-1]
        starts = (torch.arange(latents.shape[-1], device=latents.device) * hop).long()
        return sample_mask[:, starts].bool()

    def training_inputs(self, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised latents ``[B, D, T]`` and valid frames ``[B, T]`` of a training batch: of audio (the
        encoder's latent), or of codes from a token cache (the quantised latent, :meth:`Codec.codes_to_latent`).

        With timing conditioning each item's ``seconds_total`` attribute is set to its clip's valid length
        (in ``batch["attributes"]``) and every frame of the window is trained on, the silent padding included.
        """
        if "codes" in batch:
            latent = self.codec.codes_to_latent(batch["codes"].to(device)).float()  # [B, D, T]
            latents = self.normalizer.normalize(latent)
            frame_mask = batch["mask"].to(device).bool()  # [B, T]
            seconds = (frame_mask.float().sum(dim=-1) / self.codec.frame_rate).tolist()  # [B]
        else:
            latents = self.encode_audio(batch["wav"].to(device))
            frame_mask = self._frame_mask(batch["mask"].to(device), latents)
            seconds = (batch["mask"].float().sum(dim=-1) / self.sample_rate).tolist()  # [B]
        if self.uses_timing:
            batch["attributes"][:] = self.with_timing(batch["attributes"], seconds)
            frame_mask = torch.ones_like(frame_mask)
        return latents, frame_mask

    # ---------------------------------------------------------------- training
    def condition_tokens(self, attributes: list[dict[str, Any]], null: bool = False) -> Condition | None:
        """Every condition as one token sequence ``[B, S, cond_dim]`` for cross-attention (None without any)."""
        if not self.conditioning.attributes:
            return None
        fused = self.conditioning.encode(attributes, null=null)
        return fused.as_sequence() if fused is not None else None

    def compute_loss(
        self,
        latents: torch.Tensor,
        frame_mask: torch.Tensor,
        attributes: list[dict[str, Any]],
        dropped: torch.Tensor,
        attribute_dropped: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """v-prediction MSE on normalised latents ``[B, D, T]`` (valid frames ``[B, T]``), timesteps uniform.

        Args:
            dropped: ``[B]`` bool, samples whose conditions become the null condition (CFG dropout).
            attribute_dropped: attribute -> ``[B]`` bool, samples that lose that attribute only.
        Returns:
            ``loss`` and ``mse`` (detached copy for logging).
        """
        drops = {name: mask.detach().cpu().bool() for name, mask in (attribute_dropped or {}).items()}
        draw = DropoutDraw(dropped.detach().cpu().bool(), drops)
        condition = self.condition_tokens(draw.apply(attributes) if draw.any else attributes)
        scheduler = make_scheduler("ddim")
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (latents.shape[0],), device=latents.device)  # [B]
        noise = torch.randn_like(latents)
        noisy = scheduler.add_noise(latents, noise, t)
        context = self.random_context(latents) if self.dit.config.context else None  # [B, D + 1, T]
        prediction = self.dit(noisy, t, condition, context)  # [B, D, T]
        error = F.mse_loss(prediction.float(), v_target(scheduler, latents, noise, t).float(), reduction="none")
        weights = frame_mask.to(error.dtype)[:, None].expand_as(error)
        mse = (error * weights).sum() / weights.sum().clamp(min=1)
        return {"loss": mse, "mse": mse.detach()}

    @staticmethod
    def context_of(latents: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Clean context ``[B, D + 1, T]``: the latent ``[B, D, T]`` on the known frames ``[B, T]`` (zero
        elsewhere) and the known mask as a last channel."""
        known = known.to(latents.dtype)[:, None]  # [B, 1, T]
        return torch.cat([latents * known, known], dim=1)

    def random_context(self, latents: torch.Tensor) -> torch.Tensor:
        """Masked-latent training context: with probability ``mask_prob`` a sample regenerates one random span
        (10% to 90% of its frames) and knows the rest; other samples know nothing."""
        batch, _, frames = latents.shape
        known = torch.zeros(batch, frames, dtype=torch.bool, device=latents.device)  # [B, T]
        chosen = torch.rand(batch) < self.mask_prob
        for row in chosen.nonzero().flatten().tolist():
            length = max(1, round(frames * float(torch.empty(1).uniform_(0.1, 0.9))))
            start = int(torch.randint(0, frames - length + 1, (1,)))
            known[row] = True
            known[row, start: start + length] = False
        return self.context_of(latents, known)

    def trainable_modules(self) -> nn.ModuleDict:
        """What the optimiser trains: the DiT and the conditioners (the codec and latent statistics stay fixed)."""
        return nn.ModuleDict({"dit": self.dit, "conditioning": self.conditioning})

    # ---------------------------------------------------------------- generation
    def make_sampling(self, given: dict[str, Any]) -> DiffusionParams:
        """The sampling parameters from the ones the caller gave; the rest come from the model's own defaults
        (``sampling`` in its config), then from :class:`DiffusionParams`."""
        params = DiffusionParams(**{**self.sampling_defaults, **given})
        self.check_guidance(params.cfg_coef)
        return params

    def check_duration(self, duration: float) -> None:
        if duration > self.max_duration + 1e-9:
            raise ValueError(
                f"the diffusion backend generates at most its window of {self.max_duration} s in one piece; "
                f"asked for {duration} s"
            )

    def initial_noise(self, batch: int, frames: int, generator: torch.Generator | None) -> torch.Tensor:
        """Starting latent ``[B, D, T]`` of a run, drawn first from ``generator``."""
        shape = (batch, self.dit.config.latent_dim, frames)
        return torch.randn(shape, generator=generator, device=self.device)

    def generator_for(self, seed: int | None) -> torch.Generator | None:
        return torch.Generator(device=self.device).manual_seed(int(seed)) if seed is not None else None

    @torch.no_grad()
    def sample_latents(
        self,
        attributes: list[dict[str, Any]],
        x: torch.Tensor,
        params: DiffusionParams,
        *,
        start: int = 0,
        generator: torch.Generator | None = None,
        after_step: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None,
        callback: Callable[[int, int], None] | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Denoise ``x`` ``[B, D, T]`` from sampler step ``start`` under the prompts' conditions (and a clean
        ``context`` ``[B, D + 1, T]`` for a DiT that reads one)."""
        cond = self.condition_tokens(attributes)
        null = self.condition_tokens(attributes, null=True) if params.uses_cfg and cond is not None else None
        dtype, device, use_autocast = self.generator_dtype, self.device, self.autocast_enabled
        if dtype != torch.float32:  # the DiT reads its own dtype (bf16 weights): the fixed inputs cast once per call
            cond, null = (c.to(device, dtype) if c is not None else None for c in (cond, null))
            context = context.to(dtype) if context is not None else None

        def model(x: torch.Tensor, t: torch.Tensor, c: Condition | None) -> torch.Tensor:
            """One DiT pass on the scheduler's float32 latent ``x``; the scheduler gets float32 back."""
            ctx = None if context is None else context.repeat(x.shape[0] // context.shape[0], 1, 1)  # CFG: 2B rows
            with autocast(device, use_autocast):
                return self.dit(x.to(dtype), t, c, ctx).float()

        return denoise(model, x, cond, null, params, start=start, generator=generator, after_step=after_step,
                       callback=callback)

    @torch.no_grad()
    def generate_audio(
        self,
        attributes: list[dict[str, Any]],
        duration: float,
        params: DiffusionParams,
        *,
        seed: int | None = None,
        progress: bool = False,
        callback: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Waveform ``[B, C, N]`` of ``duration`` seconds per prompt (with timing conditioning: the whole window
        is generated with ``seconds_total = duration``, then trimmed)."""
        self.check_duration(duration)
        attributes = self.with_timing(attributes, [duration] * len(attributes))
        self.conditioning.validate(attributes)
        generator = self.generator_for(seed)
        frames = self.frames_for(self.max_duration if self.uses_timing else duration)
        x = self.initial_noise(len(attributes), frames, generator)
        bar = progress_bar(total=params.steps, disable=not progress, desc="diffusion", unit="steps")

        def step_done(done: int, total: int) -> None:
            bar.update(1)
            if callback is not None:
                callback(done, total)

        try:
            latent = self.sample_latents(attributes, x, params, generator=generator, callback=step_done)
        finally:
            bar.close()
        return self.decode(latent)[..., : round(duration * self.sample_rate)]

    # ---------------------------------------------------------------- persistence
    def model_config(self) -> dict[str, Any]:
        return {
            "dit": self.dit.config.to_dict(),
            "max_duration": self.max_duration,
            "cfg_dropout": self.cfg_dropout,
            "mask_prob": self.mask_prob,
            "sampling": self.sampling_defaults,
        }

    def generator_module(self) -> nn.Module:
        return self.dit

    def weights_module(self) -> nn.Module:
        """Everything in ``model.safetensors``: DiT, conditioners and latent statistics."""
        return nn.ModuleDict({"dit": self.dit, "conditioning": self.conditioning, "normalizer": self.normalizer})

    @classmethod
    def build_from_config(cls, config: dict[str, Any], directory: Path) -> LDMBackend:
        """The architecture described by ``config`` (codec weights included, DiT weights not yet loaded)."""
        codec, conditioners, _ = load_components(config, directory)  # diffusion reads every condition by cross
        return cls(DiT(DiTConfig.from_dict(config["dit"])), codec, conditioners, max_duration=config["max_duration"],
                   cfg_dropout=config.get("cfg_dropout", 0.0), mask_prob=config.get("mask_prob", 0.0),
                   sampling=config.get("sampling"))

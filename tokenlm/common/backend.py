"""What every generation backend shares: a codec, a conditioning provider and the checkpoint folder."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn

from conditioners.base import Conditioner
from conditioners.provider import ConditioningProvider
from conditioners.registry import build_conditioner
from tokenlm.codecs import Codec, load_codec
from tokenlm.common.checkpoint import (
    WEIGHTS_NAME,
    CheckpointError,
    check_format,
    load_weights,
    read_config,
    save_weights,
    write_config,
)
from tokenlm.common.device import check_dtype, uses_autocast, weight_dtype
from tokenlm.common.hf import quiet_hf_loading

CODEC_DIR = "codec"
CONDITIONERS_DIR = "conditioners"


class Backend(nn.Module, ABC):
    """Base of the LM and diffusion backends.

    Subclasses set :attr:`name`, :attr:`codec`, :attr:`conditioning` and :attr:`cfg_dropout`, and implement
    :meth:`model_config` (their part of ``config.json``), :meth:`weights_module` (what ``model.safetensors``
    holds) and :meth:`build_from_config` (the architecture of a saved folder, weights not loaded).
    """

    name = ""
    codec: Codec
    conditioning: ConditioningProvider
    cfg_dropout: float
    #: the keyword arguments ``generate`` takes for sampling, and the dataclass that validates them
    sampling_parameters: tuple[str, ...] = ()
    sampling_class: Any = None
    #: the model's own sampling defaults (saved as ``"sampling"`` in config.json, like a ``generation_config``)
    sampling_defaults: dict[str, Any] = {}
    #: the inference dtype (:meth:`set_dtype`); ``auto`` until set: the weights as built, bf16 autocast on CUDA
    dtype_name: str = "auto"

    def check_sampling_defaults(self, sampling: dict[str, Any] | None) -> dict[str, Any]:
        """Validated model sampling defaults (ValueError naming an unknown parameter or a bad value)."""
        sampling = dict(sampling or {})
        unknown = sorted(set(sampling) - set(self.sampling_parameters))
        if unknown:
            raise ValueError(f"unknown sampling default(s) {unknown}; allowed: {list(self.sampling_parameters)}")
        if self.sampling_class is not None:
            self.sampling_class(**sampling)  # validates the values
        return sampling

    # ---------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return next(self.weights_module().parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def channels(self) -> int:
        return self.codec.channels

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def attributes(self) -> list[str]:
        return self.conditioning.attributes

    def frames_for(self, seconds: float) -> int:
        """Codec frames covering ``seconds`` of audio (at least one)."""
        return max(1, math.ceil(seconds * self.frame_rate))

    def check_guidance(self, cfg_coef: float) -> None:
        """Refuse guidance on a model that never learnt an unconditional mode."""
        if cfg_coef != 1.0 and self.cfg_dropout == 0 and self.conditioning.attributes:
            raise ValueError(
                f"cfg_coef={cfg_coef} needs a model trained with condition dropout, and this one was "
                "trained without (cfg_dropout=0); use cfg_coef=1"
            )

    # ---------------------------------------------------------------- inference dtype
    @abstractmethod
    def generator_module(self) -> nn.Module:
        """The network that runs once per generation step (the LM, the DiT): what :meth:`set_dtype` casts."""

    def set_dtype(self, dtype: str | torch.dtype = "auto") -> Backend:
        """Choose the inference dtype: ``float32``, ``bfloat16`` or ``auto`` (bf16 weights on a CPU with native bf16,
        bf16 autocast on CUDA, float32 elsewhere; see :func:`tokenlm.common.device.weight_dtype`).

        The generator network changes (``auto`` keeps float32 for one too small to gain), and on a CPU so does the
        codec's decoder (``EncodecCodec.set_decoder_dtype``: bf16 halves the decode time at about 50 dB signal to
        error). The conditioners and the codec's encoder stay float32, and sampling (softmax, top-k / top-p,
        guidance, the diffusion scheduler) runs in float32 on the generator's outputs. Checkpoints are saved in
        float32 whatever is chosen. Returns ``self``.
        """
        name = check_dtype(dtype)
        generator = self.generator_module()
        chosen = weight_dtype(name, self.device, sum(p.numel() for p in generator.parameters()))
        generator.to(chosen)
        self.codec.set_decoder_dtype(weight_dtype(name, self.device))  # on CUDA: float32 (autocast decides)
        self.dtype_name = name
        return self

    @property
    def generator_dtype(self) -> torch.dtype:
        """The dtype of the generator network's weights (bfloat16 after :meth:`set_dtype` on a bf16 CPU)."""
        return next(self.generator_module().parameters()).dtype

    @property
    def autocast_enabled(self) -> bool:
        """Whether generation runs under bf16 autocast (CUDA, unless the dtype is ``float32``)."""
        return uses_autocast(self.dtype_name, self.device)

    # ---------------------------------------------------------------- persistence
    @abstractmethod
    def model_config(self) -> dict[str, Any]:
        """The backend's own entries of ``config.json``."""

    @abstractmethod
    def weights_module(self) -> nn.Module:
        """Everything saved in ``model.safetensors`` (the codec has its own folder)."""

    @classmethod
    @abstractmethod
    def build_from_config(cls, config: dict[str, Any], directory: Path) -> Backend:
        """The architecture described by a saved ``config`` (codec weights loaded, model weights not yet)."""

    def config(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            **self.model_config(),
            "codec": {**self.codec.config(), "path": CODEC_DIR},
            "conditioners": [
                {
                    "attribute": name,
                    "kind": conditioner.kind,
                    "config": conditioner.config(),
                    "assets": f"{CONDITIONERS_DIR}/{name}",
                    "fuse": self.conditioning.routes[name],
                }
                for name, conditioner in self.conditioning.conditioners.items()
            ],
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the checkpoint folder: config.json, model.safetensors, codec/ and conditioner assets."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.codec.save_pretrained(directory / CODEC_DIR)
        for name, conditioner in self.conditioning.conditioners.items():
            asset_dir = directory / CONDITIONERS_DIR / name
            asset_dir.mkdir(parents=True, exist_ok=True)
            conditioner.save_assets(asset_dir)
        generator, dtype = self.generator_module(), self.generator_dtype
        generator.float()  # checkpoints are float32 whatever the inference dtype (bf16 -> fp32 -> bf16 is exact)
        try:
            save_weights(self.weights_module(), directory / WEIGHTS_NAME)
        finally:
            generator.to(dtype)
        write_config(directory, self.config())  # last: a folder with config.json is complete
        return directory

    def external_weights(self, config: dict[str, Any]) -> tuple[str, ...]:
        """Prefixes in :meth:`weights_module` of the frozen encoders a saved ``config`` takes from an installed
        package (entries with ``"encoder": "packaged"``): their tensors are not in the folder's weights."""
        names = {id(module): name for name, module in self.weights_module().named_modules()}
        prefixes = []
        for entry in config.get("conditioners", []):
            if entry.get("encoder") == PACKAGED_ENCODER:
                encoder = self.conditioning.conditioners[entry["attribute"]].encoder_module
                prefixes.append(names[id(encoder)] + ".")
        return tuple(prefixes)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
    ) -> Backend:
        """Load a checkpoint folder written by :meth:`save_pretrained`, on ``device``; with ``dtype``, for inference
        in it (:meth:`set_dtype`; ``TextToAudio.from_pretrained`` passes ``"auto"``). Without, the weights stay
        float32, as training and packing need them."""
        if dtype is not None:
            check_dtype(dtype)
        directory = Path(directory)
        config = read_config(directory)
        check_format(config, directory)
        if config.get("backend") != cls.name:
            raise CheckpointError(f"{str(directory)!r} holds backend {config.get('backend')!r}, not {cls.name!r}")
        try:
            with quiet_hf_loading():
                backend = cls.build_from_config(config, directory)
        except KeyError as error:
            raise CheckpointError(f"{str(directory / 'config.json')!r} lacks the entry {error}") from error
        load_weights(backend.weights_module(), directory / WEIGHTS_NAME, backend.external_weights(config))
        backend.eval()
        if device is not None:
            backend.to(device)
        return backend.set_dtype(dtype) if dtype is not None else backend


#: a conditioner entry's ``"encoder"`` value when its frozen encoder comes from an installed package (not the folder)
PACKAGED_ENCODER = "packaged"


def _asset_dir(entry: dict[str, Any], directory: Path) -> Path | None:
    """A conditioner entry's saved assets, or None when its frozen encoder comes from an installed package."""
    return None if entry.get("encoder") == PACKAGED_ENCODER else directory / entry["assets"]


def load_components(config: dict[str, Any], directory: Path) -> tuple[Codec, list[Conditioner], dict[str, str]]:
    """The codec, the conditioners and their routes of a saved checkpoint folder."""
    codec_config = config["codec"]
    codec = load_codec(directory / codec_config.get("path", CODEC_DIR), codec_config)
    entries = config.get("conditioners", [])
    conditioners = [build_conditioner(e["kind"], e["config"], _asset_dir(e, directory)) for e in entries]
    routes = {c.attribute: e.get("fuse", "cross") for c, e in zip(conditioners, entries, strict=True)}
    return codec, conditioners, routes

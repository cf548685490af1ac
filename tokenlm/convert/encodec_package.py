"""The ``encodec`` package's checkpoints (``encodec_24khz-*.th``, ``encodec_48khz-*.th``) -> ``EncodecCodec``.

The files are plain state dicts. The file name picks the variant's fixed choices (sample rate, causal padding, norm,
normalisation, chunking, bandwidths, as in the package's ``encodec_model_24khz`` / ``encodec_model_48khz``); the sizes
(channels, filters, ratios, kernels, residual layers, LSTM layers, latent width, codebooks) are read from the tensor
shapes (:func:`tokenlm.convert.encodec_seanet.infer_seanet_architecture`) and checked against the variant. For the
released files the shapes give the released architecture; smaller models saved under the same names load too (the
parity tests rely on it). The weights are mapped strictly by :mod:`tokenlm.convert.encodec_seanet`.

Example::

    codec = load_encodec_package_checkpoint("encodec_24khz-d7cc33bc.th", bandwidth=6.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import EncodecConfig

from tokenlm.codecs.encodec import EncodecCodec
from tokenlm.convert.encodec_seanet import codec_from_seanet_state, infer_seanet_architecture
from tokenlm.convert.torch_files import load_state_dict_file

#: what the file name fixes (``EncodecModel.encodec_model_24khz`` / ``encodec_model_48khz`` of encodec 0.1.1)
_PACKAGE_VARIANTS: dict[str, dict[str, Any]] = {
    "encodec_24khz": {
        "sampling_rate": 24_000,
        "audio_channels": 1,
        "use_causal_conv": True,
        "norm_type": "weight_norm",
        "normalize": False,
        "chunk_length_s": None,
        "overlap": None,
        "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0],
    },
    "encodec_48khz": {
        "sampling_rate": 48_000,
        "audio_channels": 2,
        "use_causal_conv": False,
        "norm_type": "time_group_norm",
        "normalize": True,
        "chunk_length_s": 1.0,
        "overlap": 0.01,
        "target_bandwidths": [3.0, 6.0, 12.0, 24.0],
    },
}
#: SEANet choices the package never changes
_PACKAGE_FIXED = {"pad_mode": "reflect", "dilation_growth_rate": 2, "trim_right_ratio": 1.0}


def _package_variant(path: Path) -> str:
    """``encodec_24khz`` or ``encodec_48khz`` from the file name; ValueError for any other name."""
    for variant in _PACKAGE_VARIANTS:
        if path.name.startswith(variant):
            return variant
    raise ValueError(
        f"cannot tell the EnCodec variant of {path.name!r}: the encodec package's checkpoints are named "
        f"'encodec_24khz-<hash>.th' or 'encodec_48khz-<hash>.th' (the name fixes sample rate, causality, norm and "
        "chunking); rename the file to say which it is"
    )


def _package_config(state: Mapping[str, torch.Tensor], path: Path) -> EncodecConfig:
    """The transformers config of an ``encodec`` package checkpoint: variant from the name, sizes from shapes."""
    variant = _package_variant(path)
    fixed = _PACKAGE_VARIANTS[variant]
    arch = infer_seanet_architecture(state)
    disagree = [
        f"{key}: name says {fixed[key]!r}, tensors say {arch[key]!r}"
        for key in ("audio_channels", "norm_type")
        if fixed[key] != arch[key]
    ]
    if disagree:
        raise ValueError(f"{path.name!r} is named as {variant} but its tensors disagree: " + "; ".join(disagree))
    num_quantizers = arch.pop("num_quantizers")
    bits = math.log2(arch["codebook_size"])
    if 2 ** int(bits) != arch["codebook_size"]:
        raise ValueError(f"{path.name!r}: codebooks of {arch['codebook_size']} entries; EnCodec needs a power of 2")
    config = EncodecConfig(**{**arch, **fixed, **_PACKAGE_FIXED})
    if config.num_quantizers != num_quantizers:
        raise ValueError(
            f"{path.name!r} holds {num_quantizers} codebooks, but a {variant} model at {config.frame_rate} frames/s "
            f"with {arch['codebook_size']}-entry codebooks and bandwidths up to {fixed['target_bandwidths'][-1]} kbps "
            f"has {config.num_quantizers}"
        )
    return config


def encodec_from_package_state(
    state: Mapping[str, torch.Tensor], path: Path, bandwidth: float | None = None
) -> EncodecCodec:
    """An ``encodec`` package state dict, already read from ``path``, as an EncodecCodec at ``bandwidth``.

    ``path``'s name gives the variant, the tensor shapes the sizes (see :func:`load_encodec_package_checkpoint`).
    """
    return codec_from_seanet_state(_package_config(state, path), state, bandwidth, f"encodec checkpoint {path.name!r}")


def load_encodec_package_checkpoint(path: str | Path, bandwidth: float | None = None) -> EncodecCodec:
    """An ``encodec`` package checkpoint (``encodec_24khz-*.th`` / ``encodec_48khz-*.th``) as an EncodecCodec.

    The file name gives the variant (24 kHz: mono, causal, weight norm, bandwidths 1.5-24 kbps; 48 kHz: stereo,
    non-causal, time group norm, 1 s chunks with 1 % overlap, loudness-normalised, 3-24 kbps) and the tensor shapes
    the sizes; both must agree. A 48 kHz codec is chunked: use ``encode_frames`` / ``decode_frames``.

    Args:
        path: the ``.th`` file (a state dict saved with ``torch.save``); read with ``weights_only=True``.
        bandwidth: kbps, one of the variant's bandwidths; None takes the first (lowest).
    Raises:
        ValueError: unknown file name, unreadable file, name and tensors disagreeing, a tensor missing / extra /
            of the wrong shape, or a bandwidth the variant does not have.
    """
    path = Path(path).expanduser()
    _package_variant(path)  # a bad name fails before the file is read
    state = load_state_dict_file(path, "encodec package checkpoint")
    return encodec_from_package_state(state, path, bandwidth)

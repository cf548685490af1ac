"""Neural audio codecs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import EncodecConfig

from tokenlm.codecs.base import Codec
from tokenlm.codecs.encodec import EncodecCodec, tiny_encodec_config
from tokenlm.codecs.stereo import StereoEncodecCodec

#: codec ``kind`` (as written in checkpoint configs) -> class (each has ``from_pretrained`` and ``from_config``)
CODECS: dict[str, type[EncodecCodec] | type[StereoEncodecCodec]] = {
    "encodec": EncodecCodec, "encodec_stereo": StereoEncodecCodec,
}


def _codec_class(config: dict[str, Any]) -> type[EncodecCodec] | type[StereoEncodecCodec]:
    """The class registered for ``config["kind"]``."""
    kind = config.get("kind")
    if kind not in CODECS:
        raise ValueError(f"unknown codec kind {kind!r}; known kinds: {sorted(CODECS)}")
    return CODECS[kind]


def load_codec(directory: str | Path, config: dict[str, Any]) -> Codec:
    """Load the codec saved in ``directory``, as described by a checkpoint's codec ``config``.

    Example: ``load_codec("ckpt/codec", {"kind": "encodec", "bandwidth": 2.2})``.
    """
    return _codec_class(config).from_pretrained(directory, bandwidth=config.get("bandwidth"))


def build_codec(
    config: dict[str, Any],
    encodec_config: dict[str, Any] | EncodecConfig | None = None,
    seed: int | None = None,
) -> Codec:
    """A randomly initialised codec of ``config["kind"]``; ``encodec_config`` defaults to the tiny config."""
    model_config = encodec_config if encodec_config is not None else tiny_encodec_config()
    return _codec_class(config).from_config(model_config, bandwidth=config.get("bandwidth"), seed=seed)


__all__ = [
    "CODECS", "Codec", "EncodecCodec", "StereoEncodecCodec", "build_codec", "load_codec", "tiny_encodec_config",
]

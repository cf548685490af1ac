"""The codec that ships inside the package (``tokenlm/assets/codec``), trained here by the ``demo_codec`` recipe.

Example::

    codec = load_shipped_codec(bandwidth=2.0)  # 16 kHz, 4 codebooks x 1024 at 50 Hz
"""

from __future__ import annotations

from pathlib import Path

from tokenlm.codecs.encodec import EncodecCodec

#: the folder of the shipped codec (a transformers EnCodec folder)
SHIPPED_CODEC_DIR = Path(__file__).resolve().parents[1] / "assets" / "codec"
#: what recipes write in ``codec.path`` to mean the shipped codec
SHIPPED = "shipped"
RESTORE_HINT = (
    "restore it with `pip install --force-reinstall tokenlm`, or retrain it with `tokenlm train recipe=demo_codec` "
    "and `tokenlm codec export runs/demo_codec --out tokenlm/assets/codec`"
)


def load_shipped_codec(bandwidth: float | None = None) -> EncodecCodec:
    """The shipped codec at ``bandwidth`` kbps (default: its lowest); a missing or damaged asset names the file
    and how to restore it."""
    folder = SHIPPED_CODEC_DIR
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"the shipped codec is incomplete: '{folder / name}' is missing; {RESTORE_HINT}")
    try:
        return EncodecCodec.from_pretrained(folder, bandwidth=bandwidth)
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"the shipped codec in '{folder}' cannot be loaded ({error}); {RESTORE_HINT}") from error

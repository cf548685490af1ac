"""EnCodec checkpoint files of the ``encodec`` package and of audiocraft: the entry point that loads or converts them.

:func:`load_encodec_checkpoint` tells the two apart by content (a dict with ``xp.cfg`` or ``pretrained`` is an
audiocraft compression package, see :mod:`tokenlm.convert.encodec_audiocraft`; anything else must be an ``encodec``
package state dict named ``encodec_24khz-*`` / ``encodec_48khz-*``, see :mod:`tokenlm.convert.encodec_package`). The
``convert_*`` functions write the loaded codec as a Hugging Face folder ``EncodecCodec.from_pretrained`` loads,
atomically.

Example::

    convert_encodec_package_checkpoint("encodec_48khz-7e698e3e.th", "models/encodec_48khz")
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from tokenlm.codecs.encodec import EncodecCodec
from tokenlm.convert.encodec_audiocraft import encodec_from_audiocraft
from tokenlm.convert.encodec_package import encodec_from_package_state, load_encodec_package_checkpoint
from tokenlm.convert.torch_files import check_state_dict, load_torch_file


def _write_codec_folder(codec: EncodecCodec, dst: str | Path) -> Path:
    """Save ``codec`` to ``dst`` atomically: into a sibling temporary folder, renamed into place when complete."""
    dst = Path(dst).expanduser()
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FileExistsError(f"output {str(dst)!r} already exists and is not an empty folder")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        codec.save_pretrained(tmp)
        if dst.exists():
            dst.rmdir()
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def convert_encodec_package_checkpoint(src: str | Path, dst: str | Path, bandwidth: float | None = None) -> Path:
    """Convert an ``encodec`` package checkpoint into a Hugging Face folder ``EncodecCodec.from_pretrained`` loads.

    ``dst`` (``config.json`` + ``model.safetensors``) must not exist or be empty; it appears only when complete.
    All the variant's bandwidths are kept: ``bandwidth`` is checked here and chosen again when loading
    (``EncodecCodec.from_pretrained(dst, bandwidth=...)``).
    """
    return _write_codec_folder(load_encodec_package_checkpoint(src, bandwidth), dst)


def load_encodec_checkpoint(
    path: str | Path,
    *,
    bandwidth: float | None = None,
    num_codebooks: int | None = None,
    pretrained_dir: str | Path | None = None,
) -> EncodecCodec:
    """Any supported EnCodec file: an audiocraft package (a dict with ``xp.cfg`` / ``pretrained``) or an
    ``encodec`` package state dict (named ``encodec_24khz-*`` / ``encodec_48khz-*``).

    ``bandwidth`` applies to ``encodec`` package files, ``num_codebooks`` and ``pretrained_dir`` to audiocraft ones.
    """
    path = Path(path).expanduser()
    obj = load_torch_file(path, "EnCodec checkpoint")
    if isinstance(obj, dict) and ("xp.cfg" in obj or "pretrained" in obj):
        if bandwidth is not None:
            raise ValueError("bandwidth applies to encodec package files; for audiocraft ones give num_codebooks")
        return encodec_from_audiocraft(obj, pretrained_dir=pretrained_dir, num_codebooks=num_codebooks)
    if num_codebooks is not None or pretrained_dir is not None:
        raise ValueError("num_codebooks / pretrained_dir apply to audiocraft files; for encodec ones give bandwidth")
    state = check_state_dict(obj, f"encodec package checkpoint {str(path)!r}")
    return encodec_from_package_state(state, path, bandwidth)


def convert_encodec_checkpoint(src: str | Path, dst: str | Path, **options: Any) -> Path:
    """:func:`load_encodec_checkpoint` ``(src, **options)`` written as a Hugging Face folder ``dst`` (atomically)."""
    return _write_codec_folder(load_encodec_checkpoint(src, **options), dst)

"""The models shipped inside the package (``tokenlm/assets/``): where they are and how recipes name them.

Recipes refer to a shipped model as ``${asset:NAME}`` (an OmegaConf resolver registered by
:func:`register_asset_resolver`), e.g. ``codec: {path: "${asset:codec_sfx16k}"}``, so a recipe works from any
working directory and from an installed package.
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"

#: how to get a damaged asset back, quoted by every asset error
RESTORE_HINT = "reinstall the package (`pip install --force-reinstall tokenlm`) or re-run the recipe that trains it"


def shipped_assets() -> list[str]:
    """Names of the model folders under ``tokenlm/assets/`` (those with a ``config.json``)."""
    if not ASSETS_DIR.is_dir():
        return []
    return sorted(p.name for p in ASSETS_DIR.iterdir() if (p / "config.json").is_file())


def asset_path(name: str) -> Path:
    """The folder of the shipped asset ``name``.

    Raises:
        FileNotFoundError: no such asset; the message lists the shipped ones.
    """
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise FileNotFoundError(f"asset name must be a plain folder name, got {name!r}; shipped: {shipped_assets()}")
    folder = ASSETS_DIR / name
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no shipped asset {name!r} (no {folder / 'config.json'}); shipped assets: {shipped_assets()}; "
            f"to restore one, {RESTORE_HINT}"
        )
    return folder


def register_asset_resolver() -> None:
    """Register ``${asset:NAME}`` with OmegaConf (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("asset"):
        OmegaConf.register_new_resolver("asset", lambda name: str(asset_path(str(name))))

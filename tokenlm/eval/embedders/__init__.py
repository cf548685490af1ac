"""Embedders and classifiers for the standard metrics, each loaded from a local weights folder.

The model modules are imported on first use, so the suite does not pay for transformers unless a metric
needs it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from tokenlm.eval.embedders.base import AudioClassifier, AudioEmbedder, find_weights

#: name -> (module, class) of embedders with ``from_pretrained(directory)``
EMBEDDERS = {
    "vggish": ("tokenlm.eval.embedders.vggish", "VGGishEmbedder"),
    "panns": ("tokenlm.eval.embedders.panns", "PannsEmbedder"),
    "clap": ("tokenlm.eval.embedders.clap", "ClapEmbedder"),
    "encodec": ("tokenlm.eval.embedders.encodec", "EncodecEmbedder"),
}
#: name -> (module, class) of classifiers (KL, Inception Score)
CLASSIFIERS = {"panns": ("tokenlm.eval.embedders.panns", "PannsEmbedder")}


def _load(registry: dict[str, tuple[str, str]], kind: str, name: str, directory: str | Path):
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; allowed: {sorted(registry)}")
    module, cls = registry[name]
    return getattr(importlib.import_module(module), cls).from_pretrained(weights_folder(directory))


def weights_folder(directory: str | Path) -> Path:
    """``directory``, or the shipped asset of that name when no such folder exists (``clap_sfx16k``: the CLAP
    trained here, so ``--clap clap_sfx16k`` works from any working directory)."""
    from tokenlm.common.assets import ASSETS_DIR

    path = Path(directory)
    if not path.exists() and str(directory) == path.name and (ASSETS_DIR / path.name / "config.json").is_file():
        return ASSETS_DIR / path.name
    return path


def load_embedder(name: str, directory: str | Path) -> AudioEmbedder:
    """The embedder ``name`` (vggish, panns, clap, encodec) with weights from ``directory``."""
    return _load(EMBEDDERS, "embedder", name, directory)


def load_classifier(name: str, directory: str | Path) -> AudioClassifier:
    """The classifier ``name`` (panns) with weights from ``directory``."""
    return _load(CLASSIFIERS, "classifier", name, directory)


__all__ = ["CLASSIFIERS", "EMBEDDERS", "AudioClassifier", "AudioEmbedder", "find_weights", "load_classifier",
           "load_embedder"]

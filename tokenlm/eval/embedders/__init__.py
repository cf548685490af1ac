"""Embedders and classifiers for the standard metrics, each loaded from a local weights folder."""

from __future__ import annotations

from pathlib import Path

from tokenlm.eval.embedders.base import AudioClassifier, AudioEmbedder, find_weights
from tokenlm.eval.embedders.clap import ClapEmbedder
from tokenlm.eval.embedders.encodec import EncodecEmbedder
from tokenlm.eval.embedders.panns import PannsEmbedder
from tokenlm.eval.embedders.vggish import VGGishEmbedder

#: name -> class with ``from_pretrained(directory)``
EMBEDDERS = {"vggish": VGGishEmbedder, "panns": PannsEmbedder, "clap": ClapEmbedder, "encodec": EncodecEmbedder}
#: name -> classifier class (KL, Inception Score)
CLASSIFIERS = {"panns": PannsEmbedder}


def load_embedder(name: str, directory: str | Path) -> AudioEmbedder:
    """The embedder ``name`` with weights from ``directory``."""
    if name not in EMBEDDERS:
        raise ValueError(f"unknown embedder {name!r}; allowed: {sorted(EMBEDDERS)}")
    return EMBEDDERS[name].from_pretrained(directory)


def load_classifier(name: str, directory: str | Path) -> AudioClassifier:
    """The classifier ``name`` with weights from ``directory``."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; allowed: {sorted(CLASSIFIERS)}")
    return CLASSIFIERS[name].from_pretrained(directory)


__all__ = ["CLASSIFIERS", "EMBEDDERS", "AudioClassifier", "AudioEmbedder", "ClapEmbedder", "EncodecEmbedder",
           "PannsEmbedder", "VGGishEmbedder", "find_weights", "load_classifier", "load_embedder"]

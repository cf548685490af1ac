"""The embedded default model: a tiny LM built and saved on first use, so generation works offline.

Until a trained default ships with the package, this model is randomly initialised (seeded, so every
machine builds the same one): it exercises the whole pipeline — SentencePiece text encoder, delay-pattern
LM with guidance, EnCodec decoder — but its audio is not meaningful. Point ``--model`` at a trained
checkpoint folder for real sound.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import torch

from conditioners.text.sentencepiece import SentencePieceConditioner, train_sentencepiece
from tokenlm.codecs import EncodecCodec, tiny_encodec_config
from tokenlm.common.checkpoint import CONFIG_NAME
from tokenlm.lm.backend import LMBackend
from tokenlm.lm.model import LMConfig, LMModel

DEFAULT_MODEL_NAME = "default-tiny-v1"
SEED = 20261122

_SOURCES = ["a dog", "a cat", "a bird", "rain", "a car engine", "a bell", "a drum", "a piano", "a guitar",
            "wind", "a crowd", "a train", "an alarm", "water", "a violin", "a synthesizer"]
_ACTIONS = ["barks", "plays", "rings", "falls", "hums", "beeps", "sings", "roars", "ticks", "whistles"]
_QUALIFIERS = ["softly", "loudly", "twice", "in the distance", "with reverb", "slowly", "quickly",
               "over a steady beat", "in a small room", "at night"]


def default_captions() -> list[str]:
    """The deterministic caption set the default model's SentencePiece tokenizer is trained on."""
    return [f"{s} {a} {q}" for s, a, q in itertools.product(_SOURCES, _ACTIONS, _QUALIFIERS)]


def default_model_dir() -> Path:
    """Where the default model lives: ``$TOKENLM_HOME/default-tiny-v1`` (default ``~/.cache/tokenlm``)."""
    home = Path(os.environ.get("TOKENLM_HOME", Path.home() / ".cache" / "tokenlm"))
    return home / DEFAULT_MODEL_NAME


def build_default_model() -> LMBackend:
    """Build the tiny default model (seeded random weights, 16 kHz mono, 4 codebooks)."""
    torch.manual_seed(SEED)
    codec = EncodecCodec.from_config(tiny_encodec_config(), seed=SEED)
    with tempfile.TemporaryDirectory() as tmp:
        spm_path = train_sentencepiece(default_captions(), tmp, vocab_size=64)
        text = SentencePieceConditioner(
            "description", 128, spm_path, dim=64, num_layers=2, num_heads=4, max_length=64, dropout=0.0
        )
    lm = LMModel(
        LMConfig(
            num_codebooks=codec.num_codebooks, cardinality=codec.cardinality, dim=128, num_layers=4,
            num_heads=4, ffn_dim=512,
        )
    )
    backend = LMBackend(lm, codec, [text], pattern="delay", max_duration=10.0, cfg_dropout=0.1)
    return backend.eval()


def ensure_default_model() -> Path:
    """Return the default model folder, building and saving it first if it is not there yet."""
    directory = default_model_dir()
    if (directory / CONFIG_NAME).is_file():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{DEFAULT_MODEL_NAME}."))
    try:
        build_default_model().save_pretrained(staging)
        if directory.exists():  # half-written by an interrupted older build
            shutil.rmtree(directory)
        staging.rename(directory)
    except FileExistsError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory

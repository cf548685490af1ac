"""Build the model of a recipe: codec, conditioners and LM, from a plain config mapping."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from conditioners.registry import get_conditioner_class
from tokenlm.codecs import EncodecCodec, load_codec, tiny_encodec_config
from tokenlm.lm.backend import LMBackend
from tokenlm.lm.model import LMConfig, LMModel

log = logging.getLogger(__name__)


def build_codec(cfg: dict[str, Any]) -> EncodecCodec:
    """``codec.path`` (a local Hugging Face EnCodec folder) or a random codec from ``codec.tiny`` overrides."""
    if cfg.get("path"):
        return load_codec(Path(cfg["path"]), {"kind": cfg.get("kind", "encodec"), "bandwidth": cfg.get("bandwidth")})
    tiny = tiny_encodec_config(**(cfg.get("tiny") or {}))
    return EncodecCodec.from_config(tiny, bandwidth=cfg.get("bandwidth"), seed=int(cfg.get("seed", 0)))


def build_conditioner(entry: dict[str, Any], dim: int, captions: list[str], work_dir: Path):
    """One conditioner of the recipe; a SentencePiece one without ``spm_path`` is trained on ``captions``."""
    kind = entry["kind"]
    params = dict(entry.get("params") or {})
    if kind == "sentencepiece" and not params.get("spm_path"):
        from conditioners.text.sentencepiece import train_sentencepiece

        vocab = int(entry.get("vocab_size", 256))
        if not captions:
            raise ValueError("a sentencepiece conditioner without spm_path needs captions in the training data")
        params["spm_path"] = str(train_sentencepiece(captions, work_dir / f"spm_{entry['attribute']}", vocab))
        log.info("trained a SentencePiece model (vocab %d) on %d captions", vocab, len(captions))
    cls = get_conditioner_class(kind)
    return cls(attribute=entry["attribute"], output_dim=dim, **params)


def build_backend(cfg: dict[str, Any], captions: list[str], work_dir: Path, seed: int) -> LMBackend:
    """The untrained LM backend a recipe describes (``model``, ``codec``, ``conditioners``, ``pattern``)."""
    torch.manual_seed(seed)
    codec = build_codec(cfg["codec"])
    model_cfg = dict(cfg["model"])
    lm = LMModel(LMConfig(num_codebooks=codec.num_codebooks, cardinality=codec.cardinality, **model_cfg))
    conditioners = [build_conditioner(entry, lm.config.dim, captions, work_dir) for entry in cfg["conditioners"]]
    solver = cfg["solver"]
    return LMBackend(
        lm, codec, conditioners, pattern=cfg.get("pattern", "delay"),
        max_duration=float(cfg["data"]["segment_duration"]), cfg_dropout=float(solver["cfg_dropout"]),
    )

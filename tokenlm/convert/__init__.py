"""Converters from other projects' checkpoints into tokenlm backends and checkpoint folders."""

from tokenlm.convert.musicgen_hf import convert_musicgen_hf, load_musicgen_hf

__all__ = ["convert_musicgen_hf", "load_musicgen_hf"]

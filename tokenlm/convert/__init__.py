"""Converters from other projects' checkpoints into tokenlm backends, codecs and checkpoint folders."""

from tokenlm.convert.audiocraft_lm import convert_audiocraft, load_audiocraft
from tokenlm.convert.encodec_audiocraft import encodec_from_audiocraft
from tokenlm.convert.encodec_checkpoints import convert_encodec_checkpoint, load_encodec_checkpoint
from tokenlm.convert.musicgen_hf import convert_musicgen_hf, load_musicgen_hf

__all__ = [
    "convert_audiocraft",
    "convert_encodec_checkpoint",
    "convert_musicgen_hf",
    "encodec_from_audiocraft",
    "load_audiocraft",
    "load_encodec_checkpoint",
    "load_musicgen_hf",
]

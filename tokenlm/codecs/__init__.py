"""Neural audio codecs."""

from tokenlm.codecs.base import Codec

__all__ = ["Codec"]

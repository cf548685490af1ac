"""tokenlm: text-to-audio and text-to-music generation."""

__version__ = "0.1.0"

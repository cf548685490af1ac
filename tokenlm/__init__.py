"""tokenlm: text-to-audio and text-to-music generation."""

__version__ = "0.1.0"

from tokenlm.api import Audio, TextToAudio  # noqa: E402

__all__ = ["Audio", "TextToAudio", "__version__"]

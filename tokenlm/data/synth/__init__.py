"""A procedurally generated, captioned audio data set whose every caption can be checked by signal analysis.

Families: tones, chords, melodies in a key, sweeps, coloured noise, rumble / hiss, counted bursts, a
metronome at a tempo, drum patterns and two-event sequences. See ``docs/eval.md``.
"""

from tokenlm.data.synth.dataset import PRESETS, SPLITS, Preset, generate_dataset, make_clip
from tokenlm.data.synth.families import FAMILIES, get_family

__all__ = ["FAMILIES", "PRESETS", "SPLITS", "Preset", "generate_dataset", "get_family", "make_clip"]

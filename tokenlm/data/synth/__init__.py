"""A procedurally generated, captioned audio data set whose every caption can be checked by signal analysis.

Families: tones, chords, melodies in a key, sweeps, coloured noise, rumble / hiss, counted bursts, a
metronome at a tempo, drum patterns and two-event sequences. See ``docs/eval.md``.

The names below are imported on first use, so ``tokenlm --help`` (which reads ``tokenlm.data.synth.cli``) stays
light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenlm.common.lazy import lazy_exports

if TYPE_CHECKING:
    from tokenlm.data.synth.dataset import PRESETS, SPLITS, Preset, generate_dataset, make_clip
    from tokenlm.data.synth.families import FAMILIES, get_family

__all__ = ["FAMILIES", "PRESETS", "SPLITS", "Preset", "generate_dataset", "get_family", "make_clip"]

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["PRESETS", "SPLITS", "Preset", "generate_dataset", "make_clip"], "tokenlm.data.synth.dataset"),
    **dict.fromkeys(["FAMILIES", "get_family"], "tokenlm.data.synth.families"),
})

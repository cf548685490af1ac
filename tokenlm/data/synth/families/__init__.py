"""The registry of synthetic clip families."""

from __future__ import annotations

from tokenlm.data.synth.families.base import Family, Labels
from tokenlm.data.synth.families.noise import Bursts, Noise, NoiseBand
from tokenlm.data.synth.families.rhythm import Clicks, Drums
from tokenlm.data.synth.families.sequence import Sequence
from tokenlm.data.synth.families.tonal import Chord, Melody, Sweep, Tone

#: family name -> instance
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (Tone(), Chord(), Melody(), Sweep(), Noise(), NoiseBand(), Bursts(), Clicks(), Drums(), Sequence())
}


def get_family(name: str) -> Family:
    """The family called ``name``."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; allowed: {sorted(FAMILIES)}")
    return FAMILIES[name]


__all__ = ["FAMILIES", "Family", "Labels", "get_family"]

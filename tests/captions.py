"""~100 varied synthetic captions, built from word lists (deterministic), for tokenizer fixtures."""

from __future__ import annotations

import random

SOURCES = [
    "a dog", "a cat", "jazz piano", "a violin", "heavy rain", "an old engine", "a cheering crowd",
    "small birds",
    "an acoustic guitar", "distant thunder", "a church bell", "electric bass", "a steam train", "ocean waves",
    "a baby", "techno synths", "a marching band", "wind chimes", "a helicopter", "a cello quartet",
]
ACTIONS = [
    "barks", "plays softly", "hums", "rumbles", "cheers", "chirps", "strums", "echoes", "rings", "whistles",
    "pulses", "crashes", "laughs", "drones", "sings",
]
DETAILS = [
    "twice", "with soft drums", "in a small room", "at night", "outdoors", "loudly", "slowly", "with reverb",
    "over a busy street", "in the distance", "at a fast tempo", "with deep bass", "near a river",
    "for ten seconds",
]


def make_captions(n: int = 100, seed: int = 0) -> list[str]:
    """``n`` captions "<source> <action> <detail>" drawn with a fixed seed."""
    rng = random.Random(seed)
    return [f"{rng.choice(SOURCES)} {rng.choice(ACTIONS)} {rng.choice(DETAILS)}" for _ in range(n)]


CAPTIONS = make_captions()

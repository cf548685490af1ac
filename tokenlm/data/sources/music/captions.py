"""Captions for rendered music, built from the labels of what was rendered, in varied words: instruments or
ensemble, tempo in bpm and in words, key and mode, meter, loudness, drums, and where the tune comes from."""

from __future__ import annotations

from typing import Any

import numpy as np

from tokenlm.data.synth.captions import pick, tidy, with_article

TEMPO_WORDS = ((80, ("slow", "unhurried", "gentle-paced")), (112, ("moderate", "walking-pace", "medium-tempo")),
               (140, ("upbeat", "lively", "brisk")), (1000, ("fast", "quick", "energetic")))
MOOD_WORDS = {"major": ("cheerful", "bright", "happy", "sunny"), "minor": ("melancholic", "sad", "wistful", "dark")}
METER_PHRASES = {
    "3/4": ("a waltz in 3/4", "in 3/4 time", "in three-four time", "in waltz time"),
    "2/4": ("in 2/4", "in two-four time", "a march-like 2/4"),
    "4/4": ("in 4/4", "in common time", "in four-four time"),
}
LOUDNESS_PHRASES = {"loud": ("loud", "powerful", "forte"), "quiet": ("quiet", "soft", "gentle")}
DRUM_PHRASES = ("with drums", "over a drum beat", "with a {kit} drum kit", "backed by drums", "and a drum kit")


def tempo_word(bpm: float) -> str:
    """The first tempo word for ``bpm`` ("slow" below 80, "moderate" below 112, "upbeat" below 140, else "fast")."""
    for limit, words in TEMPO_WORDS:
        if bpm < limit:
            return words[0]
    return TEMPO_WORDS[-1][1][0]


def _tempo_words(bpm: float) -> tuple[str, ...]:
    return next(words for limit, words in TEMPO_WORDS if bpm < limit)


def ensemble_phrase(rng: np.random.Generator, words: list[str]) -> str:
    """``["flute"]`` -> "solo flute" / "a flute"; ``["flute", "guitar"]`` -> "flute with guitar"; three ->
    "flute with guitar and upright bass"."""
    if len(words) == 1:
        return pick(rng, (f"solo {words[0]}", with_article(words[0]), f"{words[0]} alone"))
    if len(words) == 2:
        return pick(rng, (f"{words[0]} with {words[1]}", f"{words[0]} and {words[1]}",
                          f"{words[0]} accompanied by {words[1]}"))
    return pick(rng, (f"{words[0]} with {words[1]} and {words[2]}", f"{words[0]}, {words[1]} and {words[2]}"))


def music_caption(labels: dict[str, Any], rng: np.random.Generator) -> str:
    """A sentence describing a music clip's labels (every stated attribute is in the labels)."""
    bpm = float(labels["tempo_bpm"])
    mode = labels["key"].split()[1]
    ensemble = ensemble_phrase(rng, list(labels["instrument_words"]))
    origin = labels["origin"]
    mood = pick(rng, MOOD_WORDS[mode]) if rng.random() < 0.5 else ""
    tempo_adjective = pick(rng, _tempo_words(bpm)) if rng.random() < 0.5 else ""
    loud = labels.get("loudness")
    loud_word = pick(rng, LOUDNESS_PHRASES[loud]) if loud else ""
    adjectives = " ".join(w for w in (loud_word, tempo_adjective, mood) if w)
    tune = origin.split(" ", 1)[1]  # "German folk song"
    head = pick(rng, ("{tune} on {ens}", "{ens} playing {tune_a}", "{tune} played by {ens}"))
    tune_phrase = f"{adjectives} {tune}".strip()
    sentence = head.format(tune=with_article(tune_phrase), tune_a=with_article(tune_phrase), ens=ensemble)
    clauses = []
    if labels["drums"]:
        clauses.append(pick(rng, DRUM_PHRASES).format(kit=labels.get("drum_kit", "standard")))
    clauses.append(pick(rng, (f"{round(bpm)} bpm", f"at {round(bpm)} bpm", f"{round(bpm)} beats per minute",
                              f"at a tempo of {round(bpm)}")))
    key = labels["key"]
    clauses.append(pick(rng, (f"in {key}", f"in the key of {key}", f"{key}")))
    if labels["meter"] in METER_PHRASES and rng.random() < 0.6:
        clauses.append(pick(rng, METER_PHRASES[labels["meter"]]))
    order = rng.permutation(len(clauses))
    body = ", ".join(clauses[int(i)] for i in order)
    return tidy(f"{sentence}, {body}")


"""``tokenlm data music``: a captioned music set. Real melodies from music21's corpus and generated ones, arranged
for General MIDI instruments (solo, with chords, with bass, with drums), transposed to a key, played at a tempo and
meter, rendered by FluidSynth with FluidR3_GM; captions built from what was rendered; the labels and the MIDI file
kept beside each clip.

Splits: ``train`` and ``valid``; ``test_heldout``, whose clips combine melodies never used in training with
(instrument family, key, tempo range) combinations never used in training; and ``test_heldout_timgm``, the same
clips rendered again with TimGM6mb, a SoundFont whose samples come from elsewhere, so that what judges timbre is
measured on instruments it never heard.

Example::

    tokenlm data music --n 10000 --out music --workers 2
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import TYPE_CHECKING, Any

from tokenlm.data.sources.base import Clip, Credit, DataSource, Skipped

if TYPE_CHECKING:
    import numpy as np

#: music21 corpus collections tunes are taken from, in order (see :mod:`tokenlm.data.sources.music.melodies`)
COLLECTIONS = ("essenFolksong", "ryansMammoth", "bach")
#: tempo ranges whose combinations with instrument family and key are held out as a unit
#: quarter-note tempos drawn (one octave, so that a clip's beat is never ambiguous by a factor of two)
TEMPO_RANGE = (80, 159)
TEMPO_BUCKETS = (95, 110, 125, 140, 1000)
HELDOUT_COMBINATION_FRACTION = 0.15
LOUDNESS_LUFS = {"loud": (-16.0, -13.0), "quiet": (-34.0, -30.0), None: (-26.0, -20.0)}
#: solo: the melody alone; duo: with chords; trio: with chords and bass (drums are drawn apart)
ENSEMBLES = ("solo", "duo", "trio")


def tempo_bucket(bpm: float) -> int:
    """Index of ``bpm``'s tempo range in :data:`TEMPO_BUCKETS`."""
    return next(i for i, limit in enumerate(TEMPO_BUCKETS) if bpm < limit)


def _timbre(rng: Any, amount: float) -> dict[str, int]:
    """Generator offsets for the lead (empty when ``amount`` is 0): each drawn uniformly within ``amount`` times
    its range in :data:`~tokenlm.data.sources.music.render.TIMBRE_GENERATORS`."""
    from tokenlm.data.sources.music.render import TIMBRE_GENERATORS

    if amount <= 0:
        return {}
    return {name: int(round(amount * float(rng.uniform(low, high)))) for name, (_, low, high)
            in sorted(TIMBRE_GENERATORS.items())}


def excerpt_states_key(melody: Any, start_bar: int, beats: float) -> bool:
    """Whether the excerpt's own notes point to the tune's key: the key profile that best fits its pitch classes
    (weighted by duration) is the tune's key. Excerpts that sound in another key (a passage in the relative major,
    a few notes that fit many keys) are not used, so a clip's key label is the key one hears."""
    import torch

    from tokenlm.data.sources.music.arrange import excerpt
    from tokenlm.data.synth.music import PITCH_CLASSES, detect_key

    histogram = torch.zeros(12)
    for _, duration, pitch in excerpt(melody, start_bar, beats):
        histogram[pitch % 12] += duration
    if int((histogram > 0).sum()) < 4:
        return False
    return detect_key(histogram)[0] == f"{PITCH_CLASSES[melody.tonic]} {melody.mode}"


def heldout_combination(family: str, key: str, bpm: float) -> bool:
    """Whether (instrument family, key, tempo range) is reserved for the held-out split (a stable hash; about
    :data:`HELDOUT_COMBINATION_FRACTION` of the combinations). Every family, key and tempo also occurs in training,
    in other combinations."""
    text = f"{family}|{key}|{tempo_bucket(bpm)}"
    digest = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < HELDOUT_COMBINATION_FRACTION


class MusicSource(DataSource):
    """Melodies arranged for General MIDI instruments and rendered by FluidSynth (see the module docstring)."""

    name = "music"
    splits = ("train", "valid", "test_heldout", "test_heldout_timgm")
    help = "music: melodies arranged for General MIDI instruments, rendered by FluidSynth (captions, labels, MIDI)"
    example = "tokenlm data music --n 10000 --out music --workers 2"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--soundfont", default="fluidr3",
                            help="SoundFont of train / valid / test_heldout: fluidr3 (default), timgm6mb or a path")
        parser.add_argument("--heldout-soundfont", default="timgm6mb",
                            help="SoundFont of the second held-out render (default timgm6mb; 'none' skips it)")
        parser.add_argument("--sample-rate", type=int, default=16000, help="Hz (default 16000; 32000 for music)")
        parser.add_argument("--channels", type=int, default=1, choices=(1, 2), help="1 (mono, default) or 2")
        parser.add_argument("--duration", type=float, default=6.0, help="seconds per clip (default 6)")
        parser.add_argument("--real-melodies", type=int, default=1000,
                            help="tunes taken from music21's corpus (default 1000; parsed once, then cached)")
        parser.add_argument("--generated-melodies", type=int, default=1000, help="generated tunes (default 1000)")
        parser.add_argument("--collections", default=",".join(COLLECTIONS),
                            help=f"music21 corpus collections to take tunes from (default {','.join(COLLECTIONS)})")
        parser.add_argument("--ensembles", default=",".join(ENSEMBLES),
                            help="ensembles drawn from: solo, duo (with chords), trio (chords and bass); default all")
        parser.add_argument("--lead-programs", default="curated", choices=("curated", "all"),
                            help="lead instruments: the 46 curated programs (default) or all 96 of the 12 families")
        parser.add_argument("--timbre-variation", type=float, default=0.0,
                            help="0..1: draw SoundFont generator offsets (filter, resonance, envelope, vibrato) for "
                                 "the lead, scaled by this (default 0: the font's own sounds)")
        parser.add_argument("--drums-probability", type=float, default=0.5, help="share of clips with drums (0.5)")
        parser.add_argument("--heldout-fraction", type=float, default=0.1, help="share of test_heldout (0.1)")
        parser.add_argument("--valid-fraction", type=float, default=0.05, help="share of valid (0.05)")

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        defaults = {"soundfont": "fluidr3", "heldout_soundfont": "timgm6mb", "sample_rate": 16000, "channels": 1,
                    "duration": 6.0, "real_melodies": 1000, "generated_melodies": 1000, "heldout_fraction": 0.1,
                    "valid_fraction": 0.05, "collections": ",".join(COLLECTIONS), "ensembles": ",".join(ENSEMBLES),
                    "drums_probability": 0.5, "lead_programs": "curated", "timbre_variation": 0.0}
        merged = {**defaults, **{k: v for k, v in options.items() if v is not None}}
        if not 1.0 <= float(merged["duration"]) <= 30.0:
            raise ValueError(f"duration must be within [1, 30] seconds, got {merged['duration']!r}")
        if int(merged["sample_rate"]) not in (16000, 22050, 24000, 32000, 44100, 48000):
            raise ValueError(f"sample_rate must be one of 16000, 22050, 24000, 32000, 44100, 48000, "
                             f"got {merged['sample_rate']!r}")
        for key in ("heldout_fraction", "valid_fraction"):
            if not 0.0 < float(merged[key]) < 0.5:
                raise ValueError(f"{key} must be in (0, 0.5), got {merged[key]!r}")
        if int(merged["real_melodies"]) < 0 or int(merged["generated_melodies"]) < 0:
            raise ValueError("real_melodies and generated_melodies must be >= 0")
        ensembles = [e.strip() for e in str(merged["ensembles"]).split(",") if e.strip()]
        if not ensembles or any(e not in ENSEMBLES for e in ensembles):
            raise ValueError(f"ensembles must be a comma-separated subset of {list(ENSEMBLES)}, "
                             f"got {merged['ensembles']!r}")
        if merged["lead_programs"] not in ("curated", "all"):
            raise ValueError(f"lead_programs must be 'curated' or 'all', got {merged['lead_programs']!r}")
        if not 0.0 <= float(merged["timbre_variation"]) <= 1.0:
            raise ValueError(f"timbre_variation must be in [0, 1], got {merged['timbre_variation']!r}")
        if not 0.0 <= float(merged["drums_probability"]) <= 1.0:
            raise ValueError(f"drums_probability must be in [0, 1], got {merged['drums_probability']!r}")
        unknown = [c for c in str(merged["collections"]).split(",") if c.strip() and c.strip() not in COLLECTIONS]
        if unknown:
            raise ValueError(f"unknown corpus collections {unknown}; allowed: {list(COLLECTIONS)}")
        if int(merged["real_melodies"]) + int(merged["generated_melodies"]) < 2:
            raise ValueError("the music source needs at least two melodies (real_melodies + generated_melodies)")
        return merged

    def check(self, options: dict[str, Any]) -> None:
        from tokenlm.data.sources.music.render import check_fluidsynth, soundfont_path

        opts = self._options(options)
        check_fluidsynth()
        soundfont_path(opts["soundfont"])
        if str(opts["heldout_soundfont"]).lower() != "none":
            soundfont_path(opts["heldout_soundfont"])
        try:
            import mido  # noqa: F401
            import music21  # noqa: F401
        except ImportError as err:
            from tokenlm.data.sources.base import MissingRequirement

            raise MissingRequirement(f"{err.name} is not installed: pip install 'tokenlm[data]'") from None

    def plan(self, n: int, seed: int, options: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], Counter]:
        import numpy as np

        from tokenlm.data.sources.music.melodies import generate_melody, heldout_melody, load_corpus_melodies

        opts = self._options(options)
        collections = tuple(c.strip() for c in str(opts["collections"]).split(",") if c.strip())
        real, skipped = load_corpus_melodies(int(opts["real_melodies"]), collections, int(opts.get("workers", 1)))
        generated = [generate_melody(np.random.default_rng([seed, 7, i]), f"generated/{seed}/{i}")
                     for i in range(int(opts["generated_melodies"]))]
        melodies = sorted(real + generated, key=lambda m: m.id)
        pools = {True: [m for m in melodies if heldout_melody(m.id)], False: [m for m in melodies
                                                                             if not heldout_melody(m.id)]}
        if not pools[True] or not pools[False]:
            # too few melodies for the hash to split: hold out the last one
            pools = {True: melodies[-1:], False: melodies[:-1]}
        heldout = max(1, round(n * float(opts["heldout_fraction"])))
        valid = max(1, round(n * float(opts["valid_fraction"])))
        sizes = {"train": max(0, n - heldout - valid), "valid": valid, "test_heldout": heldout}
        plans: dict[str, list[dict[str, Any]]] = {}
        for split_index, split in enumerate(("train", "valid", "test_heldout")):
            is_heldout = split == "test_heldout"
            plans[split] = [self._spec(np.random.default_rng([seed, split_index, index]), pools[is_heldout],
                                       is_heldout, opts) for index in range(sizes[split])]
        if str(opts["heldout_soundfont"]).lower() != "none":
            plans["test_heldout_timgm"] = [{**spec, "soundfont": opts["heldout_soundfont"]}
                                           for spec in plans["test_heldout"]]
        return plans, skipped

    @staticmethod
    def _spec(rng: np.random.Generator, pool: list, heldout: bool, opts: dict[str, Any]) -> dict[str, Any]:
        from tokenlm.data.sources.music.instruments import (
            ALL_MELODY_PROGRAMS,
            BASS_INSTRUMENTS,
            CHORD_INSTRUMENTS,
            DRUM_KITS,
            MELODY_FAMILIES,
            MELODY_INSTRUMENTS,
        )
        from tokenlm.data.synth.music import PITCH_CLASSES

        for _ in range(1000):
            melody = pool[int(rng.integers(len(pool)))]
            bpm = int(rng.integers(TEMPO_RANGE[0], TEMPO_RANGE[1] + 1))
            start_bar = int(rng.integers(max(1, melody.bars)))
            if excerpt_states_key(melody, start_bar, float(opts["duration"]) * bpm / 60.0):
                break
        for _ in range(1000):
            family = MELODY_FAMILIES[int(rng.integers(len(MELODY_FAMILIES)))]
            tonic = int(rng.integers(12))
            if heldout_combination(family, f"{PITCH_CLASSES[tonic]} {melody.mode}", bpm) == heldout:
                break
        leads = ALL_MELODY_PROGRAMS if opts["lead_programs"] == "all" else MELODY_INSTRUMENTS
        choices = [i for i in leads if i.family == family]
        lead = choices[int(rng.integers(len(choices)))]
        ensembles = [e.strip() for e in str(opts["ensembles"]).split(",") if e.strip()]
        ensemble = ensembles[int(rng.integers(len(ensembles)))]
        chord = bass = None
        if ensemble in ("duo", "trio"):
            options = [i for i in CHORD_INSTRUMENTS if i.family != lead.family]
            chord = options[int(rng.integers(len(options)))].program
        if ensemble == "trio" and lead.family != "bass":
            bass = BASS_INSTRUMENTS[int(rng.integers(len(BASS_INSTRUMENTS)))].program
        drums = bool(rng.random() < float(opts["drums_probability"]))
        kits = sorted(DRUM_KITS)
        loudness = (None, "loud", "quiet")[int(rng.choice(3, p=[0.5, 0.25, 0.25]))]
        low, high = LOUDNESS_LUFS[loudness]
        return {
            "melody": melody.to_json(), "start_bar": start_bar, "tonic": tonic,
            "tempo_bpm": bpm, "seconds": float(opts["duration"]), "melody_program": lead.program,
            "chord_program": chord, "bass_program": bass, "drums": drums,
            "drum_kit": kits[int(rng.integers(len(kits)))] if drums else None,
            "drum_pattern": int(rng.integers(8)), "dynamics": round(float(rng.uniform(0.5, 1.0)), 3),
            "loudness": loudness, "lufs": round(float(rng.uniform(low, high)), 2),
            "pans": [int(rng.integers(40, 89)) for _ in range(3)], "soundfont": opts["soundfont"],
            "sample_rate": int(opts["sample_rate"]), "channels": int(opts["channels"]),
            "caption_seed": int(rng.integers(2**31)),
            "timbre": _timbre(rng, float(opts["timbre_variation"])),
        }

    def render(self, spec: dict[str, Any], options: dict[str, Any]) -> Clip | Skipped:
        import numpy as np

        from tokenlm.data.sources.music.arrange import Arrangement, arrange, melody_pitches
        from tokenlm.data.sources.music.captions import music_caption
        from tokenlm.data.sources.music.instruments import DRUM_KITS, GM_PROGRAMS, INSTRUMENT_BY_PROGRAM, family_of
        from tokenlm.data.sources.music.melodies import Melody
        from tokenlm.data.sources.music.render import midi_bytes, render_notes, soundfont_path
        from tokenlm.data.synth.music import PITCH_CLASSES
        from tokenlm.data.synth.signals import normalize_loudness

        melody = Melody.from_json(spec["melody"])
        arrangement = Arrangement(melody, spec["start_bar"], spec["tonic"], float(spec["tempo_bpm"]),
                                  float(spec["seconds"]), spec["melody_program"], spec["chord_program"],
                                  spec["bass_program"], bool(spec["drums"]), spec["drum_pattern"], spec["dynamics"])
        notes = arrange(arrangement)
        programs = {0: spec["melody_program"]}
        if spec["chord_program"] is not None:
            programs[1] = spec["chord_program"]
        if spec["bass_program"] is not None:
            programs[2] = spec["bass_program"]
        pans = dict(enumerate(spec["pans"])) if spec["channels"] == 2 else None
        timbre = {0: spec["timbre"]} if spec.get("timbre") else None
        wav = render_notes(notes, programs, spec["drum_kit"], soundfont_path(spec["soundfont"]), spec["sample_rate"],
                           spec["seconds"], spec["channels"], pans, timbre)
        mono = wav if wav.ndim == 1 else wav.mean(0)
        if float(np.abs(mono).max(initial=0.0)) < 1e-4:
            return Skipped("silent render", f"{melody.id} with programs {programs}")
        scaled, lufs = normalize_loudness(mono.astype(np.float64), spec["sample_rate"], spec["lufs"])
        gain = float(np.abs(scaled).max() / max(np.abs(mono).max(), 1e-12))
        wav = (wav * gain).astype(np.float32)
        played = [p for p in (spec["melody_program"], spec["chord_program"], spec["bass_program"]) if p is not None]
        labels: dict[str, Any] = {
            "family": "music",
            "instruments": [GM_PROGRAMS[p] for p in played],
            "instrument_families": sorted({family_of(p) for p in played}),
            "lead_instrument_family": family_of(spec["melody_program"]),
            "instrument_words": [INSTRUMENT_BY_PROGRAM[p].word for p in played],
            "key": f"{PITCH_CLASSES[spec['tonic']]} {melody.mode}",
            "tempo_bpm": float(spec["tempo_bpm"]),
            "meter": f"{melody.meter[0]}/{melody.meter[1]}",
            "drums": bool(spec["drums"]),
            "drum_kit": DRUM_KITS[spec["drum_kit"]] if spec["drums"] else None,
            "loudness": spec["loudness"],
            "melody_midi": [[round(s, 4), round(e, 4), int(p)] for s, e, p in melody_pitches(arrangement)],
            "melody_id": melody.id,
            "origin": melody.origin,
            "title": melody.title,
            "soundfont": spec["soundfont"],
            "lufs": round(float(lufs), 2) if np.isfinite(lufs) else None,
        }
        if spec.get("timbre"):
            labels["timbre_offsets"] = dict(spec["timbre"])
        caption = music_caption(labels, np.random.default_rng(spec["caption_seed"]))
        midi = midi_bytes(notes, programs, spec["drum_kit"], float(spec["tempo_bpm"]), tuple(melody.meter))
        return Clip(wav, spec["sample_rate"], caption, labels, {".mid": midi})

    def credits(self, options: dict[str, Any]) -> list[Credit]:
        opts = self._options(options)
        fonts = {"fluidr3": Credit("FluidR3_GM SoundFont (Frank Wen)", "MIT", "Debian fluid-soundfont-gm"),
                 "timgm6mb": Credit("TimGM6mb SoundFont (Tim Brechbill)", "GPL-2.0", "Debian timgm6mb-soundfont")}
        out = [fonts.get(opts["soundfont"], Credit(str(opts["soundfont"]), "see the SoundFont", "user"))]
        if str(opts["heldout_soundfont"]).lower() != "none":
            out.append(fonts.get(opts["heldout_soundfont"], Credit(str(opts["heldout_soundfont"]), "see the SoundFont",
                                                                   "user")))
        out.append(Credit("music21 corpus (Essen folk songs, Ryan's Mammoth Collection, Bach chorales)",
                          "BSD-3-Clause (music21); the tunes are public domain", "PyPI music21"))
        out.append(Credit("FluidSynth", "LGPL-2.1", "Debian libfluidsynth3, PyPI pyfluidsynth",
                          "the synthesizer; renders are this build's own"))
        return out

"""``tokenlm data music``: reproducible builds, labels that match what was rendered, held-out splits, bad input; the
arranger's harmony, bass and drums; the shared build engine's drops and skips."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tokenlm.data.sources import Clip, DataSource, MissingRequirement, Skipped, build, get_source
from tokenlm.data.sources.music import heldout_combination, tempo_bucket
from tokenlm.data.sources.music.arrange import (
    BASS_CHANNEL,
    CHORD_CHANNEL,
    DRUM_CHANNEL,
    KICK,
    MELODY_CHANNEL,
    SNARE,
    Arrangement,
    arrange,
    excerpt,
    harmonise,
    triads,
)
from tokenlm.data.sources.music.instruments import GM_FAMILIES, GM_PROGRAMS, MELODY_FAMILIES, family_of
from tokenlm.data.sources.music.melodies import Melody, generate_melody, heldout_melody
from tokenlm.data.sources.music.render import SOUNDFONTS
from tokenlm.data.synth.music import SCALES

TIMGM = SOUNDFONTS["timgm6mb"][0]
needs_fluidsynth = pytest.mark.skipif(not TIMGM.is_file(), reason="TimGM6mb not installed (apt-get install "
                                      "timgm6mb-soundfont fluidsynth; .ci/run installs both)")
SMALL = {"soundfont": "timgm6mb", "heldout_soundfont": "timgm6mb", "duration": 3.0, "real_melodies": 3,
         "generated_melodies": 8, "collections": "bach", "heldout_fraction": 0.3, "valid_fraction": 0.1}


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "build_report.json"}


def _records(folder: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def music_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TIMGM.is_file():
        pytest.skip("TimGM6mb not installed")
    out = tmp_path_factory.mktemp("music") / "set"
    build(get_source("music"), out, n=10, seed=3, workers=1, progress=False, **SMALL)
    return out


# ------------------------------------------------------------------------------------------------ arranger


def test_gm_tables() -> None:
    assert len(GM_PROGRAMS) == 128 and len(GM_FAMILIES) == 16
    assert family_of(0) == "piano" and family_of(73) == "pipe" and family_of(40) == "strings"
    assert family_of(127) == "sound effects" and len(MELODY_FAMILIES) == 12
    with pytest.raises(ValueError, match="0..127"):
        family_of(128)


def test_triads_and_harmony() -> None:
    c_major = dict(triads(0, "major"))
    assert c_major[0] == (0, 4, 7) and c_major[4] == (7, 11, 2) and c_major[3] == (5, 9, 0)
    a_minor = dict(triads(9, "minor"))
    assert a_minor[0] == (9, 0, 4) and a_minor[4] == (4, 8, 11)  # the dominant is major in minor (G# leading tone)
    # bar 1: C E G (tonic); bar 2: F A C (subdominant); bar 3: G B D (dominant); bar 4: C
    notes = [(0, 1, 60), (1, 1, 64), (2, 1, 67), (3, 1, 72), (4, 2, 65), (6, 2, 69), (8, 2, 67), (10, 1, 71),
             (11, 1, 74), (12, 4, 60)]
    assert harmonise(notes, 4.0, 4, 0, "major") == [(0, 4, 7), (5, 9, 0), (7, 11, 2), (0, 4, 7)]


def test_excerpt_loops_and_cuts() -> None:
    tune = Melody("t", ((0.0, 1.0, 60), (1.0, 1.0, 62), (2.0, 2.0, 64)), (2, 4), 0, "major", "an original tune")
    assert tune.bars == 2 and tune.bar_length == 2.0
    # from bar 1 (beat 2): E (2 beats), then the tune again from its start, cut at 5 beats
    assert excerpt(tune, 1, 5.0) == [(0.0, 2.0, 64), (2.0, 1.0, 60), (3.0, 1.0, 62), (4.0, 1.0, 64)]


def test_arrangement_parts() -> None:
    tune = generate_melody(np.random.default_rng(1), "g")
    arrangement = Arrangement(tune, 0, 2, 120.0, 4.0, 73, 0, 33, True, drum_pattern=0)
    notes = arrange(arrangement)
    by_channel = Counter(n.channel for n in notes)
    assert set(by_channel) == {MELODY_CHANNEL, CHORD_CHANNEL, BASS_CHANNEL, DRUM_CHANNEL}
    beat = 0.5
    bar = tune.bar_length * beat
    kicks = sorted(n.start for n in notes if n.channel == DRUM_CHANNEL and n.pitch == KICK)
    assert kicks[0] == 0.0 and all(any(abs(k - b * bar) < 1e-9 for k in kicks) for b in range(int(4.0 / bar)))
    assert any(n.pitch == SNARE for n in notes if n.channel == DRUM_CHANNEL)
    bass = [n for n in notes if n.channel == BASS_CHANNEL]
    assert all(36 <= n.pitch <= 55 for n in bass)
    assert sorted({round(n.start / beat, 6) for n in bass}) == [float(i) for i in range(8)]  # every beat
    melody = [n for n in notes if n.channel == MELODY_CHANNEL]
    # transposed to D: every melody note is on the D scale of the tune's mode (generated tunes stay on the scale)
    assert {n.pitch % 12 for n in melody} <= {(2 + step) % 12 for step in SCALES[tune.mode]}
    assert len({n.pitch % 12 for n in melody}) >= 3
    assert all(n.end <= 4.0 + 1e-9 or n.start < 4.0 for n in notes)
    assert max(n.velocity for n in notes) <= 127


def test_generated_melody_is_reproducible_and_ends_on_the_tonic() -> None:
    a = generate_melody(np.random.default_rng(5), "g")
    b = generate_melody(np.random.default_rng(5), "g")
    assert a == b
    tonic_midi = 60 if a.mode == "major" else 57
    assert a.notes[-1][2] % 12 == tonic_midi % 12
    assert a.bars == 8


def test_heldout_rules_are_stable_and_partial() -> None:
    ids = [f"generated/0/{i}" for i in range(400)]
    share = np.mean([heldout_melody(i) for i in ids])
    assert 0.04 < share < 0.18
    assert heldout_melody("generated/0/7") == heldout_melody("generated/0/7")
    combos = [(f, k, b) for f in MELODY_FAMILIES for k in ("C major", "A minor", "F# major") for b in (85, 100, 150)]
    flags = [heldout_combination(*c) for c in combos]
    assert any(flags) and not all(flags)
    assert tempo_bucket(80) == 0 and tempo_bucket(159) == 4


# ------------------------------------------------------------------------------------------------- builds


@needs_fluidsynth
def test_build_writes_labels_that_match_the_render(music_set: Path) -> None:
    import mido
    import soundfile as sf

    report = json.loads((music_set / "build_report.json").read_text())
    assert set(report["splits"]) == {"train", "valid", "test_heldout", "test_heldout_timgm"}
    records = _records(music_set, "train")
    assert len(records) == report["splits"]["train"]["clips"] >= 5
    for record in records:
        labels = record["labels"]
        wav, rate = sf.read(music_set / record["path"], dtype="float32")
        assert rate == 16000 and wav.shape == (48000,) and np.abs(wav).max() > 0.01
        assert f"{round(labels['tempo_bpm'])}" in record["description"]
        assert labels["key"] in record["description"] or labels["key"].split()[0] in record["description"]
        assert 80 <= labels["tempo_bpm"] <= 159 and labels["meter"] in ("2/4", "3/4", "4/4")
        assert labels["instrument_families"] == sorted({family_of(GM_PROGRAMS.index(i)) for i in
                                                        labels["instruments"]})
        midi = mido.MidiFile(file=io.BytesIO((music_set / labels["sidecars"]["mid"]).read_bytes()))
        melody_track = next(t for t in midi.tracks if any(getattr(m, "channel", -1) == 0 for m in t))
        pitches = [m.note for m in melody_track if m.type == "note_on" and m.velocity > 0]
        assert pitches == [p for _, _, p in labels["melody_midi"]]
        beside = json.loads((music_set / record["path"]).with_suffix(".json").read_text())
        assert beside == {"description": record["description"], "labels": labels}
        drum_notes = [m for t in midi.tracks for m in t if getattr(m, "channel", -1) == 9 and m.type == "note_on"]
        assert bool(drum_notes) == labels["drums"]
        assert ("drum" in record["description"]) == labels["drums"]


@needs_fluidsynth
def test_heldout_splits_never_reach_training(music_set: Path) -> None:
    train = _records(music_set, "train") + _records(music_set, "valid")
    heldout = _records(music_set, "test_heldout")
    timgm = _records(music_set, "test_heldout_timgm")
    assert heldout and len(timgm) == len(heldout)
    train_melodies = {r["labels"]["melody_id"] for r in train}
    for record in heldout:
        labels = record["labels"]
        assert labels["melody_id"] not in train_melodies
        assert heldout_combination(labels["lead_instrument_family"], labels["key"], labels["tempo_bpm"])
    for record in train:
        labels = record["labels"]
        assert not heldout_combination(labels["lead_instrument_family"], labels["key"], labels["tempo_bpm"])
    for a, b in zip(heldout, timgm, strict=True):
        assert a["description"] == b["description"]
        assert {k: v for k, v in a["labels"].items() if k not in ("soundfont", "lufs", "sidecars")} == \
               {k: v for k, v in b["labels"].items() if k not in ("soundfont", "lufs", "sidecars")}


@needs_fluidsynth
def test_same_seed_same_bytes_for_any_worker_count(tmp_path: Path) -> None:
    options = {**SMALL, "generated_melodies": 4, "real_melodies": 2, "duration": 2.0}
    one = build(get_source("music"), tmp_path / "one", n=6, seed=9, workers=1, progress=False, **options)
    two = build(get_source("music"), tmp_path / "two", n=6, seed=9, workers=2, progress=False, **options)
    assert one["splits"] == two["splits"]
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")
    other = build(get_source("music"), tmp_path / "other", n=6, seed=10, workers=1, progress=False, **options)
    assert other["splits"]["train"]["clips"] > 0
    assert _digest(tmp_path / "other") != _digest(tmp_path / "one")


@needs_fluidsynth
def test_cli_builds_and_refuses_a_missing_soundfont(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tokenlm.cli import main

    out = tmp_path / "cli"
    args = ["data", "music", "--n", "4", "--out", str(out), "--soundfont", "timgm6mb", "--heldout-soundfont", "none",
            "--duration", "2", "--real-melodies", "2", "--generated-melodies", "3", "--collections", "bach",
            "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "train:" in printed and (out / "train.jsonl").is_file() and not (out / "test_heldout_timgm.jsonl").exists()
    missing = tmp_path / "missing"
    assert main([*args[:5], str(missing), "--soundfont", str(tmp_path / "nope.sf2"), *args[8:]]) == 2
    assert "nope.sf2" in capsys.readouterr().err
    assert not missing.exists() and not list(tmp_path.glob(".missing*"))
    assert main(args) == 2  # an existing non-empty folder is not replaced without --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_missing_package_soundfont_names_the_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tokenlm.data.sources.music import render

    monkeypatch.setitem(render.SOUNDFONTS, "fluidr3", (tmp_path / "FluidR3_GM.sf2", "fluid-soundfont-gm"))
    with pytest.raises(MissingRequirement, match="apt-get install fluid-soundfont-gm"):
        build(get_source("music"), tmp_path / "out", n=4, seed=0, progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_options_are_refused_by_name(tmp_path: Path) -> None:
    source = get_source("music")
    with pytest.raises(ValueError, match="duration"):
        source.plan(4, 0, {"duration": 0.1})
    with pytest.raises(ValueError, match="unknown corpus collections"):
        source.plan(4, 0, {"collections": "beatles"})
    with pytest.raises(ValueError, match="lead_programs"):
        source.plan(4, 0, {"lead_programs": "some"})
    with pytest.raises(ValueError, match="ensembles"):
        source.plan(4, 0, {"ensembles": "solo,quartet"})
    with pytest.raises(ValueError, match="n must be"):
        build(source, tmp_path / "x", n=0)


def test_lead_programs_all_draws_every_family_program() -> None:
    from tokenlm.data.sources.music.instruments import ALL_MELODY_PROGRAMS, BY_PROGRAM

    source = get_source("music")
    options = {"real_melodies": 0, "generated_melodies": 20, "ensembles": "solo", "lead_programs": "all"}
    plans, _ = source.plan(300, 0, options)
    programs = {spec["melody_program"] for spec in plans["train"]}
    assert programs - set(BY_PROGRAM)  # programs beyond the curated ones are drawn
    assert programs <= {i.program for i in ALL_MELODY_PROGRAMS} and max(programs) < 96
    curated, _ = source.plan(300, 0, {**options, "lead_programs": "curated"})
    assert {spec["melody_program"] for spec in curated["train"]} <= set(BY_PROGRAM)
    assert all(spec["chord_program"] is None and spec["bass_program"] is None for spec in curated["train"])


def test_unparsable_tunes_are_counted(tmp_path: Path) -> None:
    from tokenlm.data.sources.music.melodies import _parse_file

    bad = tmp_path / "bad.abc"
    bad.write_text("X:1\nT:broken\nM:7/0\nK:Q#\n|||::[[[\n")
    melodies, skipped = _parse_file(bad, "essenFolksong")
    assert melodies == [] and sum(skipped.values()) == 1


# ------------------------------------------------------------------------------------------------ engine


class _Toy(DataSource):
    """A third-party style source: a quiet and a loud tone, a silent render and a refused input."""

    name = "toy"

    def plan(self, n, seed, options):  # noqa: ANN001, ANN201
        return {"train": [{"kind": k} for k in ("tone", "silent", "refused", "loud")]}, Counter({"bad file": 2})

    def render(self, spec, options):  # noqa: ANN001, ANN201
        t = np.arange(8000) / 8000
        if spec["kind"] == "refused":
            return Skipped("unreadable file", "x.ogg")
        level = {"tone": 0.5, "silent": 0.0, "loud": 3.0}[spec["kind"]]
        return Clip((level * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, spec["kind"], {"k": 1},
                    {".txt": b"side"})


def test_engine_drops_silence_counts_skips_and_keeps_sidecars(tmp_path: Path) -> None:
    import soundfile as sf

    report = build(_Toy(), tmp_path / "toy", n=4, seed=0, progress=False)
    entry = report["splits"]["train"]
    assert entry["clips"] == 2 and entry["dropped"] == {"silent render": 1, "unreadable file": 1}
    assert report["skipped"] == {"bad file": 2}
    records = _records(tmp_path / "toy", "train")
    assert [r["description"] for r in records] == ["tone", "loud"]
    assert [r["path"] for r in records] == ["audio/train/train_000000.wav", "audio/train/train_000003.wav"]
    assert (tmp_path / "toy" / records[0]["labels"]["sidecars"]["txt"]).read_bytes() == b"side"
    loud, _ = sf.read(tmp_path / "toy" / records[1]["path"])
    assert 0.99 < np.abs(loud).max() <= 1.0  # a render past full scale is scaled down as a whole, not clipped
    assert (tmp_path / "toy" / "CREDITS.md").is_file()


@needs_fluidsynth
def test_stereo_at_32_khz(tmp_path: Path) -> None:
    import soundfile as sf

    options = {**SMALL, "generated_melodies": 4, "real_melodies": 0, "duration": 2.0, "channels": 2,
               "sample_rate": 32000, "heldout_soundfont": "none", "ensembles": "trio"}
    build(get_source("music"), tmp_path / "st", n=4, seed=2, progress=False, **options)
    record = _records(tmp_path / "st", "train")[0]
    wav, rate = sf.read(tmp_path / "st" / record["path"], dtype="float32")
    assert rate == 32000 and wav.shape == (64000, 2) and record["channels"] == 2
    assert not np.array_equal(wav[:, 0], wav[:, 1])  # the parts are panned apart
    assert len(record["labels"]["instruments"]) in (2, 3)  # a trio: chords, and a bass unless the lead is one


def test_corpus_melodies_are_the_same_parsed_in_parallel_and_from_the_cache(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenlm.data.sources.music.melodies import cache_dir, load_corpus_melodies

    monkeypatch.setenv("TOKENLM_CACHE", str(tmp_path / "one"))
    serial, skipped = load_corpus_melodies(3, ("bach",), workers=1)
    assert len(serial) == 3 and all(m.origin == "a Bach chorale" and m.notes for m in serial)
    assert len(list(cache_dir().glob("*.json"))) >= 3
    assert load_corpus_melodies(3, ("bach",), workers=1) == (serial, skipped)  # from the cache
    monkeypatch.setenv("TOKENLM_CACHE", str(tmp_path / "two"))
    assert load_corpus_melodies(3, ("bach",), workers=2) == (serial, skipped)


@needs_fluidsynth
def test_timbre_offsets_reach_the_synthesizer() -> None:
    """NRPN generator offsets change the sound as named: a lower filter cutoff darkens it, a slower attack softens
    its start; no offsets leaves the font's sound as it is."""
    from tokenlm.data.sources.music.arrange import Note
    from tokenlm.data.sources.music.render import render_notes

    def centroid_and_onset(timbre: dict | None) -> tuple[float, float]:
        wav = render_notes([Note(0, 69, 100, 0.0, 0.9)], {0: 40}, None, TIMGM, 16000, 1.0, timbre=timbre)
        spectrum = np.abs(np.fft.rfft(wav))
        freqs = np.fft.rfftfreq(wav.size, 1 / 16000)
        return float((spectrum * freqs).sum() / spectrum.sum()), float(np.abs(wav[:800]).max())

    plain = centroid_and_onset(None)
    assert centroid_and_onset({}) == plain
    darker = centroid_and_onset({0: {"filter_cutoff": -1200}})
    slower = centroid_and_onset({0: {"attack": 600}})
    assert darker[0] < 0.7 * plain[0]
    assert slower[1] < 0.7 * plain[1]
    with pytest.raises(ValueError, match="unknown timbre generator"):
        render_notes([], {0: 40}, None, TIMGM, 16000, 0.1, timbre={0: {"brightness": 1}})


def test_timbre_variation_is_drawn_within_its_ranges() -> None:
    from tokenlm.data.sources.music.render import TIMBRE_GENERATORS

    source = get_source("music")
    options = {"real_melodies": 0, "generated_melodies": 6, "timbre_variation": 0.5}
    plans, _ = source.plan(40, 0, options)
    for spec in plans["train"]:
        assert set(spec["timbre"]) == set(TIMBRE_GENERATORS)
        for name, value in spec["timbre"].items():
            _, low, high = TIMBRE_GENERATORS[name]
            assert 0.5 * low - 1 <= value <= 0.5 * high + 1
    plain, _ = source.plan(40, 0, {**options, "timbre_variation": 0.0})
    assert all(spec["timbre"] == {} for spec in plain["train"])
    # the variation draws after everything else: the same seed keeps the same music
    assert [s["melody_program"] for s in plain["train"]] == [s["melody_program"] for s in plans["train"]]
    with pytest.raises(ValueError, match="timbre_variation"):
        source.plan(4, 0, {"timbre_variation": 2})

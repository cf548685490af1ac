"""``tokenlm data speech``: espeak-ng sentences, built through the shared engine and the CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tokenlm.cli import main
from tokenlm.data.sources import MissingRequirement, build, get_source
from tokenlm.data.sources.base import REPORT_NAME
from tokenlm.data.sources.speech import (
    ACCENTS,
    GENDERS,
    HELDOUT_COMBINATIONS,
    SPEEDS,
    VOICE_PITCH_BOUNDARY_HZ,
    all_sentences,
    heldout_sentence,
    parse_wav,
    sentence_pools,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


def _records(root: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (root / f"{split}.jsonl").read_text().splitlines()]


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a build but its report (which holds the build time), by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != REPORT_NAME}


def test_sentences_and_heldout_rules():
    sentences = all_sentences()
    assert len(sentences) >= 300 and len(set(sentences)) == len(sentences)
    heldout = {s for pool in sentence_pools()[True] for s in pool}
    seen = {s for pool in sentence_pools()[False] for s in pool}
    assert heldout and not heldout & seen and heldout | seen == set(sentences)
    assert all(heldout_sentence(s) for s in heldout)
    # each accent holds out one (gender, speed); every gender and every speed is held out somewhere
    assert set(HELDOUT_COMBINATIONS) == set(ACCENTS)
    assert {g for g, _ in HELDOUT_COMBINATIONS.values()} == set(GENDERS)
    assert {s for _, s in HELDOUT_COMBINATIONS.values()} == set(SPEEDS)


def test_parse_wav_reads_placeholder_sizes_and_refuses_other_bytes():
    header = (b"RIFF" + (0x7FFFFFFF).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + bytes.fromhex("01000100") + (22050).to_bytes(4, "little") + (44100).to_bytes(4, "little")
              + bytes.fromhex("02001000") + b"data" + (0x7FFFFFFF).to_bytes(4, "little"))
    wav, rate = parse_wav(header + np.array([0, 16384, -32768], dtype="<i2").tobytes())
    assert rate == 22050 and wav.tolist() == [0.0, 0.5, -1.0]
    with pytest.raises(ValueError, match="did not write a WAV"):
        parse_wav(b"espeak-ng: error")


@needs_espeak
def test_build_is_byte_identical_for_any_worker_count_and_labels_match(tmp_path):
    one = tmp_path / "one"
    report = build(get_source("speech"), one, n=6, seed=11, workers=1, progress=False)
    # the same data set through the CLI, with two render processes
    assert main(["data", "speech", "--n", "6", "--out", str(tmp_path / "two"), "--seed", "11", "--workers", "2",
                 "--quiet"]) == 0
    assert _files(one) == _files(tmp_path / "two")
    assert sum(entry["clips"] for entry in report["splits"].values()) == 6

    for split in ("train", "valid", "test_heldout"):
        for record in _records(one, split):
            labels, caption = record["labels"], record["description"]
            assert labels["family"] == "speech"
            assert f'"{labels["text"]}"' in caption and labels["accent"] in caption
            combination = (labels["gender"], labels["speed"])
            held = split == "test_heldout"
            assert (combination == HELDOUT_COMBINATIONS[labels["accent"]]) == held
            assert heldout_sentence(labels["text"]) == held
            assert 0.5 < record["duration"] <= 6.0 and record["sample_rate"] == 16000
            low, high = SPEEDS[labels["speed"]]
            assert low <= labels["words_per_minute"] <= high
    assert "espeak-ng" in (one / "CREDITS.md").read_text()


@needs_espeak
def test_rendered_pitch_differs_as_labelled():
    from tokenlm.eval.dsp import frame_db, to_analysis_rate
    from tokenlm.eval.pitch import yin

    source = get_source("speech")
    plans, _ = source.plan(60, 3, {})
    specs = plans["train"]
    chosen = [next(s for s in specs if s["voice_pitch"] == "high"), next(s for s in specs if s["gender"] == "male"),
              next(s for s in specs if s["gender"] == "female" and s["voice_pitch"] == "low")]
    median = {}
    for spec in chosen:
        clip = source.render(spec, {"duration": 6.0})
        x = to_analysis_rate(clip.wav, clip.sample_rate)
        track = yin(x, frame_db(x), fmax=600.0)
        median[(spec["gender"], spec["voice_pitch"])] = float(track.f0[track.voiced].median())
    high = median[("female", "high")]
    assert high > VOICE_PITCH_BOUNDARY_HZ > max(median[("male", "low")], median[("female", "low")]), median


@needs_espeak
def test_sample_rate_and_duration_options(tmp_path):
    build(get_source("speech"), tmp_path / "out", n=3, seed=2, progress=False, sample_rate=22050, duration=5.0)
    for split in ("train", "valid", "test_heldout"):
        for record in _records(tmp_path / "out", split):
            assert record["sample_rate"] == 22050 and record["duration"] <= 5.0


def test_missing_espeak_names_the_package_and_writes_nothing(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "out"
    with pytest.raises(MissingRequirement, match="apt-get install espeak-ng"):
        build(get_source("speech"), out, n=3, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == [empty]
    assert main(["data", "speech", "--n", "3", "--out", str(out), "--quiet"]) == 2
    assert "espeak-ng is not installed: apt-get install espeak-ng" in capsys.readouterr().err
    assert not out.exists()


def test_bad_options_name_the_value(tmp_path, capsys):
    source = get_source("speech")
    with pytest.raises(ValueError, match=r"duration must be seconds within \[1.0, 30.0\], got 0.2"):
        source.plan(3, 0, {"duration": 0.2})
    with pytest.raises(ValueError, match=r"sample rate must be .* got 'fast'"):
        source.plan(3, 0, {"sample_rate": "fast"})
    with pytest.raises(SystemExit):
        main(["data", "speech", "--n", "3", "--out", str(tmp_path / "x"), "--sample-rate", "100"])
    assert "got '100'" in capsys.readouterr().err

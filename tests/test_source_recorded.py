"""``tokenlm data recorded``: recorded samples from Debian packages, and the real-recording evaluation lists."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tokenlm.cli import main
from tokenlm.data.sources import MissingRequirement, build, get_source, recorded
from tokenlm.data.sources.base import REPORT_NAME
from tokenlm.data.sources.recorded import (
    asterisk_transcript,
    asterisk_voice_clips,
    catalogue,
    drum_name,
    evaluation,
    file_split,
    hydrogen_hits,
    installed_collections,
    lmms_instrument_samples,
)

GM_FAMILIES = {"piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed",
               "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects"}
needs_samples = pytest.mark.skipif(not installed_collections(), reason="no recorded samples installed (apt-get "
                                   "install hydrogen-drumkits lmms-common sound-theme-freedesktop)")
needs_lmms = pytest.mark.skipif(not recorded.LMMS_DIR.is_dir(), reason="apt-get install lmms-common")


def _records(root: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (root / f"{split}.jsonl").read_text().splitlines()]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != REPORT_NAME}


def _key(labels: dict) -> str:
    """The path of a clip's file inside its collection (what the held-out rule hashes)."""
    roots = {"hydrogen": catalogue.HYDROGEN_DIR, "lmms": catalogue.LMMS_DIR, "freedesktop": catalogue.FREEDESKTOP_DIR}
    return Path(labels["source_file"]).relative_to(roots[labels["collection"]]).as_posix()


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    """A stand-in LMMS sample folder (30 readable snares, one unreadable kick) and no other collection."""
    drums = tmp_path / "lmms" / "drums"
    drums.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(1, 31):
        hit = (rng.standard_normal(2205) * np.exp(-np.arange(2205) / 300)).astype(np.float32) * 0.5
        sf.write(drums / f"snare{index:02d}.ogg", hit, 22050, format="WAV")  # WAV bytes: fast, and readable
    (drums / "kick04.ogg").write_bytes(b"RIFF\x00\x00\x00\x00WAVEvorbis-in-a-wav-container")
    monkeypatch.setattr(catalogue, "LMMS_DIR", tmp_path / "lmms")  # the folders are read where the inventory is
    monkeypatch.setattr(catalogue, "HYDROGEN_DIR", tmp_path / "none")
    monkeypatch.setattr(catalogue, "FREEDESKTOP_DIR", tmp_path / "none")
    for cached in (recorded.inventory, recorded.drum_kits):
        cached.cache_clear()
    yield tmp_path
    for cached in (recorded.inventory, recorded.drum_kits):
        cached.cache_clear()


def test_names_become_captions():
    assert recorded._LMMS["hihat_closed"][0] == "a closed hi-hat"
    assert recorded._LMMS["violin_pizzicato"][:3:2] == ("a violin played pizzicato", "strings")
    assert {family for _, _, family in recorded._LMMS.values() if family} <= GM_FAMILIES
    assert drum_name("Sabian Hat Closed") == "closed hi-hat"
    assert drum_name('Kick (Tama Superstar 22")') == "kick drum"
    assert drum_name("c#3 - stick") == "rimshot"
    assert drum_name("Paiste Bell") == "ride cymbal bell"
    assert drum_name("17") is None and drum_name("Sample: beats_01-39.flac") is None
    assert asterisk_transcript("digits/7.wav") == "seven"
    assert asterisk_transcript("digits/mon-2.wav") == "march"
    assert asterisk_transcript("letters/ascii36.wav") == "dollar sign"
    assert asterisk_transcript("vm-goodbye.wav") == "vm goodbye"
    assert {file_split(f"drums/snare{i:02d}.ogg") for i in range(1, 31)} == {"train", "valid", "test_heldout"}


def test_unreadable_files_are_counted_with_their_paths(fake_packages, tmp_path):
    out = tmp_path / "out"
    report = build(get_source("recorded"), out, n=6, seed=0, progress=False, collections="lmms", duration=1.0)
    bad = str(fake_packages / "lmms" / "drums" / "kick04.ogg")
    assert report["skipped"] == {"unreadable file": 1}
    assert report["skipped_inputs"] == {"unreadable file": [bad]}
    for split in ("train", "valid", "test_heldout"):
        for record in _records(out, split):
            labels = record["labels"]
            assert file_split(_key(labels)) == split
            assert labels["name"] == "snare drum" and labels["drums"] is True and "snare drum" in record["description"]
            assert record["duration"] == 1.0


def test_missing_packages_name_them_and_write_nothing(fake_packages, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(catalogue, "LMMS_DIR", tmp_path / "none")
    out = tmp_path / "out"
    message = "no recorded samples found: apt-get install hydrogen-drumkits lmms-common sound-theme-freedesktop"
    with pytest.raises(MissingRequirement) as error:
        build(get_source("recorded"), out, n=3, progress=False)
    assert str(error.value) == message
    assert main(["data", "recorded", "--n", "3", "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert hydrogen_hits() == [] and lmms_instrument_samples() == []
    monkeypatch.setattr(evaluation, "ASTERISK_DIRS", (tmp_path / "none",))
    assert asterisk_voice_clips() == []


def test_bad_options_name_the_value(capsys, tmp_path):
    with pytest.raises(ValueError, match=r"subset of hydrogen, lmms, freedesktop, got 'drums'"):
        get_source("recorded").check({"collections": "drums"})
    with pytest.raises(SystemExit):
        main(["data", "recorded", "--n", "3", "--out", str(tmp_path / "x"), "--duration", "-1"])
    assert "got '-1'" in capsys.readouterr().err


@needs_samples
def test_build_is_byte_identical_for_any_worker_count(tmp_path):
    one = tmp_path / "one"
    report = build(get_source("recorded"), one, n=8, seed=5, workers=1, progress=False)
    assert main(["data", "recorded", "--n", "8", "--out", str(tmp_path / "two"), "--seed", "5", "--workers", "2",
                 "--quiet"]) == 0
    assert _files(one) == _files(tmp_path / "two")
    assert sum(entry["clips"] for entry in report["splits"].values()) == 8
    for split in ("train", "valid", "test_heldout"):
        for record in _records(one, split):
            labels, caption = record["labels"], record["description"]
            assert labels["family"] == "recorded" and Path(labels["source_file"]).is_file()
            assert file_split(_key(labels)) == split  # whole files are held out
            assert record["duration"] == 4.0 and record["sample_rate"] == 16000
            if labels["hits"] > 1:
                assert f"{labels['tempo_bpm']}" in caption and labels["name"] in caption
            assert labels["instrument_family"] in GM_FAMILIES | {None}
    credits = (one / "CREDITS.md").read_text()
    for collection in installed_collections():
        assert {"hydrogen": "Hydrogen drum kit", "lmms": "LMMS", "freedesktop": "freedesktop"}[collection] in credits


@needs_lmms
def test_every_unreadable_lmms_file_is_counted():
    _, left_out = recorded.inventory("lmms")
    counted = {path for reason, path in left_out if reason == recorded.UNREADABLE}
    unreadable = set()
    for folder in recorded.LMMS_FOLDERS:
        for path in sorted((recorded.LMMS_DIR / folder).glob("*")):
            try:
                sf.info(str(path))
            except Exception:  # noqa: BLE001 - whatever libsndfile raises
                unreadable.add(str(path))
    unreadable = {p for p in unreadable if recorded._LMMS.get(Path(p).stem.rstrip("0123456789"))}
    assert counted == unreadable


def test_evaluation_lists():
    for path, name, is_drum in hydrogen_hits()[:50]:
        assert Path(path).is_file() and name and is_drum is True
    for path, name, family in lmms_instrument_samples():
        assert Path(path).is_file() and name and family in GM_FAMILIES
    clips = asterisk_voice_clips()
    if not clips:
        pytest.skip("asterisk-core-sounds-en-wav is not installed")
    assert len(clips) > 100
    assert all(path.endswith(".wav") and "/silence/" not in path and text for path, text in clips)
    assert not any(Path(path).stem in ("beep", "tt-monkeys") for path, _ in clips)

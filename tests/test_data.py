"""Tests for tokenlm.data: manifests, the audio segment dataset, the token cache and the `tokenlm data` CLI."""

from __future__ import annotations

import json
import logging
import math
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from tokenlm import cli
from tokenlm.audio import load_audio, write_audio
from tokenlm.codecs import EncodecCodec, tiny_encodec_config
from tokenlm.data.dataset import AudioSegmentDataset, collate_audio
from tokenlm.data.manifest import AudioEntry, index_directory, read_manifest, write_manifest
from tokenlm.data.token_cache import TokenDataset, collate_codes, encode_manifest, resolve_codec


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5, channels: int = 1) -> torch.Tensor:
    """A ``[channels, N]`` sine wave (channel c scaled by 1 / (c + 1))."""
    t = torch.arange(round(rate * seconds), dtype=torch.float64) / rate
    wave = amplitude * torch.sin(2 * math.pi * freq * t)
    return torch.stack([wave / (c + 1) for c in range(channels)]).float()


def constant(value: float, rate: int, seconds: float) -> torch.Tensor:
    """A ``[1, N]`` constant signal (DC), which survives PCM-16 to within 2**-15."""
    return torch.full((1, round(rate * seconds)), value)


def peak_frequency(wav: torch.Tensor, rate: int) -> float:
    """Frequency (Hz) of the largest FFT bin of a ``[N]`` signal."""
    return float(torch.fft.rfft(wav.double()).abs().argmax()) * rate / wav.shape[-1]


def make_manifest(folder: Path, clips: dict[str, tuple[torch.Tensor, int, dict]], name: str = "data.jsonl") -> Path:
    """Write each ``name -> (wav, rate, attributes)`` as ``folder/name.wav`` and a manifest listing them."""
    entries = []
    for stem, (wav, rate, attributes) in clips.items():
        path = write_audio(folder / f"{stem}.wav", wav, rate, normalize="none")
        entries.append(AudioEntry(path, wav.shape[-1] / rate, rate, wav.shape[0], attributes))
    return write_manifest(entries, folder / name)


# ------------------------------------------------------------------------------------------------- manifest


def test_manifest_round_trip_relative_paths_and_sidecar(tmp_path: Path) -> None:
    audio = tmp_path / "set" / "sub"
    write_audio(audio / "a.wav", sine(440, 8000, 0.5), 8000)
    write_audio(audio / "b.wav", sine(220, 8000, 0.25), 8000)
    (audio / "a.json").write_text(json.dumps({"description": "from sidecar", "genre": "jazz", "duration": 99}))
    outside = write_audio(tmp_path / "elsewhere" / "c.wav", sine(100, 8000, 0.1), 8000)
    entries = [
        AudioEntry(audio / "a.wav", 0.5, 8000, 1, {"description": "inline", "labels": {"source": "sine"}}),
        AudioEntry(audio / "b.wav", 0.25, 8000, None, {"bpm": 120}),
        AudioEntry(outside, 0.1, 8000, 1, {}),
    ]
    manifest = write_manifest(entries, tmp_path / "set" / "data.jsonl")
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [line["path"] for line in lines] == ["sub/a.wav", "sub/b.wav", str(outside)]
    assert "channels" not in lines[1] and lines[0]["labels"] == {"source": "sine"}

    back = read_manifest(manifest)
    assert [e.path for e in back] == [audio / "a.wav", audio / "b.wav", outside]
    assert [(e.duration, e.sample_rate, e.channels) for e in back] == [(0.5, 8000, 1), (0.25, 8000, None),
                                                                         (0.1, 8000, 1)]
    # inline wins over the sidecar; sidecar-only keys are merged; file keys in a sidecar are ignored
    assert back[0].attributes == {"description": "inline", "genre": "jazz", "labels": {"source": "sine"}}
    assert back[1].attributes == {"bpm": 120}
    assert read_manifest(manifest, sidecars=False)[0].attributes == entries[0].attributes

    # the folder moves as a whole: relative paths follow it
    shutil.copytree(tmp_path / "set", tmp_path / "moved")
    moved = read_manifest(tmp_path / "moved" / "data.jsonl")
    assert moved[0].path == tmp_path / "moved" / "sub" / "a.wav" and moved[2].path == outside
    # gzip manifests, and absolute paths on request
    gz = write_manifest(back, tmp_path / "set" / "data.jsonl.gz", relative=False)
    assert read_manifest(gz) == back


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"path": "a.wav", "duration": 1.0', r"data.jsonl:2: malformed JSON"),
        ('{"path": "a.wav", "sample_rate": 8000}', r"data.jsonl:2: missing required key\(s\) \['duration'\]"),
        ('{"path": "a.wav", "duration": 1, "sample_rate": -5}', r"data.jsonl:2: 'sample_rate' must be a positive"),
        ('["a.wav"]', r"data.jsonl:2: expected a JSON object, got list"),
    ],
)
def test_read_manifest_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    good = '{"path": "x.wav", "duration": 1.0, "sample_rate": 8000}'
    (tmp_path / "data.jsonl").write_text(f"{good}\n{line}\n")
    with pytest.raises(ValueError, match=message):
        read_manifest(tmp_path / "data.jsonl")


def test_read_manifest_bad_sidecar_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "x.json").write_text("{not json")
    (tmp_path / "data.jsonl").write_text('{"path": "x.wav", "duration": 1.0, "sample_rate": 8000}\n')
    with pytest.raises(ValueError, match=r"data.jsonl:1: malformed sidecar metadata '.*x.json'"):
        read_manifest(tmp_path / "data.jsonl")


def test_index_directory_skips_corrupt_and_non_audio(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "audio"
    write_audio(root / "one.wav", sine(440, 16000, 0.5), 16000)
    write_audio(root / "deep" / "two.flac", sine(330, 22050, 0.25, channels=2), 22050)
    (root / "deep" / "two.json").write_text(json.dumps({"description": "a stereo tone", "genre": "test"}))
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00garbage that is not a wave file")
    (root / "fake.mp3").write_text("not an mp3 either")
    (root / "notes.txt").write_text("not audio")
    out = tmp_path / "manifests" / "data.jsonl"

    assert index_directory(root, out, progress=False) == 2
    err = capsys.readouterr().err
    assert "indexed 2 audio file(s)" in err and "skipped 2 unreadable" in err and "ignored 1 non-audio" in err
    assert "broken.wav" in err and "fake.mp3" in err
    entries = read_manifest(out, sidecars=False)
    assert [e.path.relative_to(root).as_posix() for e in entries] == ["deep/two.flac", "one.wav"]
    assert entries[0].attributes == {"description": "a stereo tone", "genre": "test"}
    assert (entries[0].sample_rate, entries[0].channels, entries[0].duration) == (22050, 2, 5512 / 22050)
    assert (entries[1].sample_rate, entries[1].channels, entries[1].duration) == (16000, 1, 0.5)
    # inside its audio folder, the manifest's paths are relative
    index_directory(root, root / "data.jsonl", progress=False)
    assert json.loads((root / "data.jsonl").read_text().splitlines()[0])["path"] == "deep/two.flac"

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "bad.wav").write_bytes(b"nope")
    with pytest.raises(ValueError, match="no readable audio files in .*empty"):
        index_directory(empty, tmp_path / "e.jsonl", progress=False)


# -------------------------------------------------------------------------------------------------- dataset


def test_segments_padding_resampling_and_channels(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, {
        "long": (sine(440, 8000, 2.0, channels=2), 8000, {"description": "long tone"}),  # stereo, 8 kHz
        "short": (sine(440, 16000, 0.2), 16000, {"description": "short tone"}),
    })
    ds = AudioSegmentDataset(manifest, segment_duration=0.5, sample_rate=16000, channels=1, seed=3)
    assert len(ds) == 2 and ds.skipped == {}
    seen = set()
    for index in range(12):
        item = ds[index]
        wav, mask = item["wav"], item["mask"]
        assert wav.shape == (1, 8000) and wav.dtype == torch.float32 and mask.shape == (8000,)
        assert item["index"] == index
        description = item["attributes"]["description"]
        seen.add(description)
        if description == "short tone":
            assert mask[:3200].all() and not mask[3200:].any()
            assert torch.all(wav[:, 3200:] == 0)
        else:  # stereo 8 kHz -> mono 16 kHz: mean of channels (0.5 and 0.25 amplitude) = 0.375
            assert mask.all()
            assert abs(peak_frequency(wav[0], 16000) - 440) <= 2
            rms = wav[0, 200:-200].pow(2).mean().sqrt().item()
            assert rms == pytest.approx(0.375 / math.sqrt(2), rel=0.02)
        assert set(item["attributes"]) == {"description"}
    assert seen == {"short tone", "long tone"}

    stereo = AudioSegmentDataset(manifest, segment_duration=0.25, sample_rate=8000, channels=2, samples_per_epoch=7)
    assert len(stereo) == 7 and stereo[0]["wav"].shape == (2, 2000)
    batch = collate_audio([stereo[i] for i in range(3)])
    assert batch["wav"].shape == (3, 2, 2000) and batch["mask"].shape == (3, 2000)
    assert batch["index"].tolist() == [0, 1, 2] and len(batch["attributes"]) == 3


def test_determinism_per_index_and_seed(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    clips = {f"n{i}": (0.3 * torch.randn(1, 16000, generator=generator), 16000, {"description": f"noise {i}"})
             for i in range(4)}
    manifest = make_manifest(tmp_path, clips)
    a = AudioSegmentDataset(manifest, 0.1, 16000, 1, seed=7)
    b = AudioSegmentDataset([manifest], 0.1, 16000, 1, seed=7)
    other = AudioSegmentDataset(manifest, 0.1, 16000, 1, seed=8)
    order = [5, 0, 3, 1000, 5]
    first = [a[i]["wav"] for i in order]
    assert all(torch.equal(x, b[i]["wav"]) for x, i in zip(first, order, strict=True))  # any order, any object
    assert torch.equal(first[0], first[-1])
    assert not torch.equal(a[5]["wav"], a[6]["wav"])
    assert sum(torch.equal(a[i]["wav"], other[i]["wav"]) for i in range(10)) < 3
    with pytest.raises(IndexError, match="index must be >= 0"):
        a[-1]


def test_weighted_mixing(tmp_path: Path) -> None:
    one = make_manifest(tmp_path / "one", {"x": (constant(0.1, 8000, 0.1), 8000, {"source": "one"})})
    two = make_manifest(tmp_path / "two", {f"y{i}": (constant(0.2, 8000, 0.1), 8000, {"source": "two"})
                                            for i in range(3)})
    ds = AudioSegmentDataset([one, two], 0.05, 8000, 1, weights=[0.8, 0.2], samples_per_epoch=500)
    share = sum(ds[i]["attributes"]["source"] == "one" for i in range(500)) / 500
    assert share == pytest.approx(0.8, abs=0.05)
    default = AudioSegmentDataset([one, two], 0.05, 8000, 1)  # by number of files: 1/4 from `one`
    assert default.probabilities.tolist() == [0.25, 0.75]
    with pytest.raises(ValueError, match="one value per manifest"):
        AudioSegmentDataset([one, two], 0.05, 8000, 1, weights=[1.0])
    with pytest.raises(ValueError, match="not all zero"):
        AudioSegmentDataset([one, two], 0.05, 8000, 1, weights=[0.0, 0.0])


def test_bad_entries_are_skipped_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manifest = make_manifest(tmp_path, {"good": (sine(440, 8000, 0.5), 8000, {}),
                                        "tiny": (sine(440, 8000, 0.05), 8000, {})})
    (tmp_path / "corrupt.wav").write_bytes(b"garbage")
    extra = [
        {"path": "missing.wav", "duration": 1.0, "sample_rate": 8000},
        {"path": "corrupt.wav", "duration": 1.0, "sample_rate": 8000},
        {"path": "good.wav", "duration": 0.0, "sample_rate": 8000},
    ]
    with manifest.open("a") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in extra)
    with caplog.at_level(logging.WARNING, logger="tokenlm.data.dataset"):
        ds = AudioSegmentDataset(manifest, 0.1, 8000, 1, min_duration=0.1)
    assert len(ds) == 1
    assert ds.skipped == {"missing file": 1, "unreadable": 1, "non-positive duration": 1,
                          "shorter than min_duration": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 4 of 5 manifest entries" in warnings[0]

    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text("".join(json.dumps(line) + "\n" for line in extra[:2]))
    with pytest.raises(ValueError, match=r"no usable audio files in manifest\(s\) \['.*bad.jsonl'\]"):
        AudioSegmentDataset([manifest, only_bad], 0.1, 8000, 1)
    with pytest.raises(ValueError, match="segment_duration must be a positive number, got -1"):
        AudioSegmentDataset(manifest, -1, 8000, 1)


def test_truncated_file_falls_back_deterministically(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    noise = 0.25 + 0.05 * torch.randn(1, 4000, generator=torch.Generator().manual_seed(2))  # mean 0.25
    manifest = make_manifest(tmp_path, {"good": (noise, 8000, {"description": "good"}),
                                        "doomed": (constant(-0.25, 8000, 0.5), 8000, {"description": "doomed"})})
    ds = AudioSegmentDataset(manifest, 0.1, 8000, 1)
    before = [ds[i] for i in range(20)]
    was = [item["attributes"]["description"] for item in before]
    assert "doomed" in was and "good" in was
    (tmp_path / "doomed.wav").write_bytes((tmp_path / "doomed.wav").read_bytes()[:30])  # truncated header
    with caplog.at_level(logging.WARNING, logger="tokenlm.data.dataset"):
        items = [ds[i] for i in range(20)]
    assert ds.read_failures == was.count("doomed")
    assert any("doomed.wav" in r.getMessage() for r in caplog.records)
    for item, old in zip(items, before, strict=True):
        assert item["attributes"]["description"] == "good" and item["mask"].all()
        assert item["wav"].mean().item() == pytest.approx(0.25, abs=0.02)
        if old["attributes"]["description"] == "good":  # items that never touched the broken file are unchanged
            assert torch.equal(item["wav"], old["wav"])
    again = [ds[i]["wav"] for i in range(20)]  # the fallback is deterministic too
    assert all(torch.equal(x["wav"], y) for x, y in zip(items, again, strict=True))

    (tmp_path / "good.wav").unlink()
    with pytest.raises(RuntimeError, match="item 0: no readable audio"):
        ds[0]


def test_mixup_mixes_two_clips_and_keeps_main_attributes(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, {"a": (constant(0.2, 8000, 0.3), 8000, {"description": "low"}),
                                        "b": (constant(0.6, 8000, 0.1), 8000, {"description": "high"})})
    ds = AudioSegmentDataset(manifest, 0.2, 8000, 1, mixup=1.0)
    plain = AudioSegmentDataset(manifest, 0.2, 8000, 1)
    lams = []
    for index in range(8):
        item = ds[index]
        main = plain[index]  # the main clip is drawn first from the same generator
        assert item["attributes"] == main["attributes"]
        # "b" is 0.1 s: 800 real samples of 1600. The mix covers the OR of both masks: all 1600 samples.
        assert item["mask"].all()
        value = item["wav"][0, 0].item()
        lam = (value - 0.6) / (0.2 - 0.6) if main["attributes"]["description"] == "low" else (value - 0.2) / 0.4
        assert 0.0 < lam < 1.0  # mixed with the *other* clip (with itself, lam would read as 1)
        lams.append(lam)
        # beyond the short clip's end, only the long clip (weighted) remains
        tail = item["wav"][0, -1].item()
        weight = lam if main["attributes"]["description"] == "low" else 1 - lam
        assert tail == pytest.approx(0.2 * weight, abs=1e-3)
    assert len({round(lam, 4) for lam in lams}) == len(lams)  # a fresh lambda per item
    with pytest.raises(ValueError, match="mixup must be a probability"):
        AudioSegmentDataset(manifest, 0.2, 8000, 1, mixup=1.5)


# ---------------------------------------------------------------------------------------------- token cache


@pytest.fixture(scope="module")
def codec() -> EncodecCodec:
    return EncodecCodec.from_config(tiny_encodec_config(), seed=0)


def test_token_cache_codes_equal_codec_encode(tmp_path: Path, codec: EncodecCodec) -> None:
    generator = torch.Generator().manual_seed(1)
    manifest = make_manifest(tmp_path, {
        "a": (0.3 * torch.randn(1, 8000 * 2, generator=generator), 8000, {"description": "noise"}),  # resampled
        "b": (sine(300, 16000, 0.33), 16000, {"description": "tone", "bpm": 90}),
        "c": (sine(500, 16000, 1.0, channels=2), 16000, {"description": "stereo"}),  # downmixed
    })
    cache = encode_manifest(manifest, codec, tmp_path / "cache", batch_size=2, shard_size=2, progress=False)
    index = json.loads((cache / "index.json").read_text())
    assert index["num_codebooks"] == 4 and index["cardinality"] == 128 and index["frame_rate"] == 50
    assert index["codec"]["kind"] == "encodec" and index["dtype"] == "int16"
    assert index["shards"] == ["shard-00000.safetensors", "shard-00001.safetensors"]
    ds = TokenDataset(cache, segment_frames=200)
    ds.check_codec(codec)
    for entry in index["entries"]:
        wav = load_audio(entry["path"], 16000, 1)  # [1, n]
        expected = codec.encode(wav[None])[0]  # [K, T]
        assert entry["num_frames"] == expected.shape[-1]
        assert torch.equal(ds._item_codes(entry, 0, entry["num_frames"]), expected)
    assert [e["attributes"]["description"] for e in index["entries"]] == ["noise", "tone", "stereo"]

    chunked = encode_manifest(manifest, codec, tmp_path / "chunks", segment_duration=0.4, progress=False)
    entries = json.loads((chunked / "index.json").read_text())["entries"]
    assert [(e["attributes"]["description"], e["chunk"], e["num_frames"]) for e in entries] == [
        ("noise", 0, 20), ("noise", 1, 20), ("noise", 2, 20), ("noise", 3, 20), ("noise", 4, 20),
        ("tone", 0, 17), ("stereo", 0, 20), ("stereo", 1, 20), ("stereo", 2, 10),
    ]
    tone = load_audio(tmp_path / "c.wav", 16000, 1)[:, 6400:12800]  # the second chunk of "c"
    assert torch.equal(TokenDataset(chunked, 20)._item_codes(entries[7], 0, 20), codec.encode(tone[None])[0])


def test_token_dataset_segments_masks_and_codec_check(tmp_path: Path, codec: EncodecCodec) -> None:
    manifest = make_manifest(tmp_path, {"long": (sine(200, 16000, 1.0), 16000, {"description": "long"}),
                                        "short": (sine(200, 16000, 0.1), 16000, {"description": "short"})})
    cache = encode_manifest(manifest, codec, tmp_path / "cache", progress=False)
    ds = TokenDataset(cache, segment_frames=20, seed=4, samples_per_epoch=9)
    assert len(ds) == 9
    full = {e["attributes"]["description"]: ds._item_codes(e, 0, e["num_frames"]) for e in ds.entries}
    assert full["long"].shape == (4, 50) and full["short"].shape == (4, 5)
    for index in range(9):
        item = ds[index]
        codes, mask = item["codes"], item["mask"]
        assert codes.shape == (4, 20) and codes.dtype == torch.long and mask.shape == (20,)
        if item["attributes"]["description"] == "short":
            assert mask[:5].all() and not mask[5:].any()
            assert torch.equal(codes[:, :5], full["short"]) and not codes[:, 5:].any()
        else:  # a window of the long item
            assert mask.all()
            assert any(torch.equal(codes, full["long"][:, s : s + 20]) for s in range(31))
        assert torch.equal(codes, TokenDataset(cache, 20, seed=4)[index]["codes"])
    batch = collate_codes([ds[i] for i in range(3)])
    assert batch["codes"].shape == (3, 4, 20) and batch["mask"].shape == (3, 20)
    copy = pickle.loads(pickle.dumps(ds))  # as DataLoader workers get it: open shard handles are dropped
    assert torch.equal(copy[5]["codes"], ds[5]["codes"])
    assert batch["index"].tolist() == [0, 1, 2]

    other_config = tiny_encodec_config(codebook_size=64)
    with pytest.raises(ValueError, match=r"cardinality 128 \(cache\) vs 64 \(codec\)"):
        ds.check_codec(EncodecCodec.from_config(other_config, seed=0))
    with pytest.raises(ValueError, match="same configuration but different weights"):
        ds.check_codec(EncodecCodec.from_config(tiny_encodec_config(), seed=1))
    ds.check_codec(EncodecCodec.from_config(tiny_encodec_config(), seed=1), check_weights=False)
    with pytest.raises(FileNotFoundError, match="no token cache in"):
        TokenDataset(tmp_path, 20)


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_index_and_encode(tmp_path: Path, codec: EncodecCodec, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "audio"
    write_audio(root / "a.wav", sine(440, 16000, 0.5), 16000)
    write_audio(root / "b.wav", sine(220, 16000, 0.3), 16000)
    (root / "b.json").write_text(json.dumps({"description": "low tone"}))
    manifest = tmp_path / "data.jsonl"
    assert cli.main(["data", "index", str(root), "--out", str(manifest), "--quiet"]) == 0
    assert len(read_manifest(manifest)) == 2
    assert f"wrote manifest {manifest}" in capsys.readouterr().out

    hf_dir = tmp_path / "encodec"
    codec.save_pretrained(hf_dir)
    checkpoint = tmp_path / "ckpt"
    codec.save_pretrained(checkpoint / "codec")
    config = {"backend": "lm", "codec": {**codec.config(), "path": "codec"}}
    (checkpoint / "config.json").write_text(json.dumps(config))
    for source in (hf_dir, checkpoint):
        assert resolve_codec(source).num_codebooks == 4
        out = tmp_path / f"cache_{source.name}"
        argv = ["data", "encode", str(manifest), "--model-or-codec", str(source), "--out", str(out),
                "--segment-duration", "0.2", "--quiet"]
        assert cli.main(argv) == 0
        ds = TokenDataset(out, segment_frames=10)
        ds.check_codec(codec)
        assert len(ds.entries) == 5  # 0.5 s -> 3 chunks, 0.3 s -> 2 chunks
        assert ds.entries[-1]["attributes"] == {"description": "low tone"}

    capsys.readouterr()
    assert cli.main(["data", "encode", str(manifest), "--model-or-codec", str(tmp_path), "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tokenlm data: error: no config.json in") and len(err.strip().splitlines()) == 1


def test_add_data_parser_joins_an_existing_data_group() -> None:
    import argparse

    from tokenlm.data.cli import add_data_parser

    parser = argparse.ArgumentParser(prog="tokenlm")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data").add_subparsers(dest="data_command", required=True)
    data.add_parser("synth").add_argument("--count", type=int)
    assert add_data_parser(commands) is data
    assert parser.parse_args(["data", "synth", "--count", "3"]).count == 3
    args = parser.parse_args(["data", "index", "folder", "--out", "m.jsonl"])
    assert (args.data_command, args.directory, args.out) == ("index", "folder", "m.jsonl")

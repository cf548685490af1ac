"""The suite end to end: run_suite, the report files, ``tokenlm eval`` and the README example."""

import json
import re
import shlex
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from tokenlm import cli
from tokenlm.data.synth import generate_dataset, make_clip
from tokenlm.eval import analyze, run_suite, write_report
from tokenlm.eval.inputs import load_clip, match_audio
from tokenlm.eval.png import colormap, spectrogram_image, write_png

README = Path(__file__).resolve().parents[1] / "README.md"


def _synth_clips(count: int, seed: int = 0, duration: float = 2.0):
    rng = np.random.default_rng(seed)
    return [make_clip(rng, "sfx16k", duration=duration) for _ in range(count)]


def test_run_suite_scores_good_and_bad_clips():
    clips = _synth_clips(10)
    generated = [(wav, rate) for wav, rate, _, _ in clips]
    generated[1] = (np.full(32000, np.nan, np.float32), 16000)
    generated[2] = (np.zeros(32000, np.float32), 16000)
    captions = [caption for _, _, caption, _ in clips]
    report = run_suite(generated, captions, [labels for *_, labels in clips], shuffles=5)
    summary = report["summary"]
    assert summary["clips"] == 10 and summary["unusable_clips"] == 2
    assert summary["ceiling"] == 1.0 and summary["chance"] < 0.5
    overall = report["alignment"]["overall"]
    misses = sum(len(report["clips"][i]["checks"]) for i in (1, 2))
    assert overall["matched"] == overall["n"] - misses  # everything else is found
    assert overall["calibrated"] == pytest.approx((overall["score"] - overall["chance"]) / (1.0 - overall["chance"]))
    for index, reason in ((1, "NaN"), (2, "silent")):
        checks = report["clips"][index]["checks"]
        assert checks and all(not c["matched"] and reason in c["reason"] for c in checks)
    assert report["quality"]["set_size"] == 8 and report["quality"]["excluded_generated"] == 2
    assert report["quality"]["frechet_distance"] > 0


def test_run_suite_parses_captions_when_no_labels_are_given():
    clips = _synth_clips(6, seed=3)
    report = run_suite([(w, r) for w, r, _, _ in clips], [c for _, _, c, _ in clips], shuffles=3)
    assert report["summary"]["alignment"] == 1.0 and report["summary"]["ceiling"] == 1.0
    with pytest.raises(ValueError, match="need one generated clip per caption"):
        run_suite([(clips[0][0], 16000)], ["a", "b"])


def test_write_report_json_html_and_spectrograms(tmp_path):
    clips = _synth_clips(4, seed=1)
    audio = [(w, r) for w, r, _, _ in clips]
    report = run_suite(audio, [c for _, _, c, _ in clips], shuffles=2)
    paths = write_report(report, tmp_path / "report", audio)
    data = json.loads(paths["json"].read_text())
    assert data["summary"]["clips"] == 4 and len(data["clips"]) == 4
    page = paths["html"].read_text()
    for _, _, caption, _ in clips:
        assert caption.replace("'", "&#x27;") in page
    assert page.count('<img src="spectrograms/clip_') == 4 and "calibrated" in page
    png = (tmp_path / "report" / "spectrograms" / "clip_0000.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (320, 128)


def test_png_writer_round_trips_pixels(tmp_path):
    import zlib

    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    data = write_png(tmp_path / "x.png", image).read_bytes()
    idat = data[data.index(b"IDAT") + 4: data.index(b"IEND") - 8]
    rows = zlib.decompress(idat)
    assert rows == b"\x00" + image[0].tobytes() + b"\x00" + image[1].tobytes()
    with pytest.raises(ValueError, match="uint8 image"):
        write_png(tmp_path / "y.png", image.astype(np.float32))


def test_spectrogram_images_of_silence_and_a_tone():
    silent = spectrogram_image(np.zeros(16000, np.float32), 16000)
    assert silent.shape == (128, 320, 3) and (silent == colormap(np.zeros((1, 1)))[0, 0]).all()
    tone = spectrogram_image(np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32), 16000)
    brightness = tone.astype(float).sum(axis=(1, 2))
    row = int(brightness.argmax())  # the tone's band: 1 kHz is mel band ~18 of 64, so in the lower half
    assert 64 < row < 110 and brightness[row] > 3 * np.median(brightness)


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("synth"), n=24, seed=4, duration=(1.5, 3.0))


def test_cli_eval_on_a_generated_set(synth_set, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["eval", "--manifest", str(synth_set["valid"]), "--out", str(out), "--shuffles", "3"]) == 0
    assert "alignment 1.000" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["ceiling"] == 1.0 and len(report["clips"]) == 2
    assert (out / "report.html").is_file() and len(list((out / "spectrograms").glob("*.png"))) == 2


def test_cli_eval_reads_a_folder_of_generated_audio(synth_set, tmp_path):
    entries = [json.loads(line) for line in synth_set["train"].read_text().splitlines()][:5]
    generated = tmp_path / "generated"
    generated.mkdir()
    for index, entry in enumerate(entries):
        source = synth_set["train"].parent / entry["path"]
        # the first two files are swapped, so each is scored against the other's caption
        target = entries[1 - index]["path"] if index < 2 else entry["path"]
        shutil.copy(source, generated / Path(target).name)
    manifest = tmp_path / "five.jsonl"
    manifest.write_text("".join(json.dumps({**e, "path": str(synth_set["train"].parent / e["path"])}) + "\n"
                                for e in entries))
    out = tmp_path / "report"
    assert cli.main(["eval", "--manifest", str(manifest), "--audio-dir", str(generated), "--out", str(out)]) == 0
    clips = json.loads((out / "report.json").read_text())["clips"]
    assert all(c["matched"] for clip in clips[2:] for c in clip["checks"])
    swapped = analyze(*load_clip(synth_set["train"].parent / entries[1]["path"])).detections()
    assert clips[0]["detections"] == json.loads(json.dumps(swapped))
    # an earlier report's audio folder (clip_00000.wav, ... in manifest order, as `tokenlm eval --model` writes it)
    rescored = tmp_path / "rescored"
    rescored.mkdir()
    for index, entry in enumerate(entries):
        shutil.copy(generated / Path(entry["path"]).name, rescored / f"clip_{index:05d}.wav")
    assert cli.main(["eval", "--manifest", str(manifest), "--audio-dir", str(rescored), "--out", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["clips"] == clips
    (rescored / "clip_00004.wav").unlink()  # neither naming complete: the manifest's names are what is missing
    with pytest.raises(FileNotFoundError, match="5 generated files missing"):
        match_audio(rescored, entries, 5)


def test_cli_eval_generates_with_a_model(spm_model_path, tmp_path):
    from conftest import make_tiny_backend

    model_dir = make_tiny_backend(spm_model_path).save_pretrained(tmp_path / "model")
    captions = tmp_path / "captions.txt"
    captions.write_text("a sine tone at A4\n\nwhite noise bursting three times\nclicks at 120 bpm\n")
    out = tmp_path / "report"
    assert cli.main(["eval", "--captions", str(captions), "--model", str(model_dir), "--out", str(out),
                     "--duration", "1.0", "--batch-size", "2", "--shuffles", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [c["caption"] for c in report["clips"]] == ["a sine tone at A4", "white noise bursting three times",
                                                        "clicks at 120 bpm"]
    assert [c["labels"]["family"] for c in report["clips"]] == ["tone", "bursts", "clicks"]
    assert all(c["duration_s"] == 1.0 for c in report["clips"])
    assert len(list((out / "audio").glob("*.wav"))) == 3
    assert report["summary"]["ceiling"] == 1.0
    # the summary's alignment is the share of matched checks over every check of every clip
    checks = [check for clip in report["clips"] for check in clip["checks"]]
    assert len(checks) >= 3 and all(isinstance(check["matched"], bool) for check in checks)
    assert report["summary"]["alignment"] == pytest.approx(sum(check["matched"] for check in checks) / len(checks))
    assert report["alignment"]["overall"]["n"] == len(checks)


def test_eval_judges_the_clips_as_tokenlm_generate_writes_them(tmp_path, capsys):
    """Generated clips are written at the model's level (as ``tokenlm generate`` writes them: scaled down only
    where they would clip), and the suite gets exactly what was written."""
    import torch

    from tokenlm.audio import read_audio
    from tokenlm.eval.cli import _as_written

    t = np.arange(16000) / 16000
    quiet = (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    loud = (2.0 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)  # would clip
    written = _as_written([(quiet, 16000), (loud, 16000)], tmp_path / "audio")
    assert "1 of 2 generated clips would clip and were scaled down as a whole" in capsys.readouterr().out
    assert np.array_equal(written[0][0], quiet)  # the model's level, untouched
    assert np.allclose(written[1][0], loud / np.abs(loud).max(), atol=1e-7)  # one gain, not clamped
    for index, (wav, rate) in enumerate(written):
        file, file_rate = read_audio(tmp_path / "audio" / f"clip_{index:05d}.wav")
        assert file_rate == rate == 16000
        assert torch.allclose(file[0], torch.from_numpy(wav), atol=1 / 32768)  # judged = written


def test_cli_eval_errors_are_one_line(tmp_path, capsys):
    captions = tmp_path / "c.txt"
    captions.write_text("a sine tone at A4\n")
    missing = tmp_path / "no_vggish"
    assert cli.main(["eval", "--captions", str(captions), "--audio-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--fad", f"vggish={missing}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tokenlm eval: error:") and str(missing) in err and "vggish*.pth" in err
    assert cli.main(["eval", "--captions", str(captions), "--out", str(tmp_path / "o")]) == 2
    assert "give --model DIR to generate or --audio-dir" in capsys.readouterr().err
    assert cli.main(["eval", "--captions", str(captions), "--audio-dir", str(tmp_path), "--out",
                     str(tmp_path / "o")]) == 2
    assert "holds 0 audio files for 1 captions" in capsys.readouterr().err


def _readme_section() -> str:
    text = README.read_text()
    return text[text.index("## Evaluation and synthetic data"):]


def test_readme_evaluation_commands(tmp_path, monkeypatch):
    block = re.search(r"```bash\n(.*?)```", _readme_section(), flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    commands = [line for line in block.splitlines() if line.startswith("tokenlm ")]
    assert len(commands) >= 2
    for command in commands:
        if "--model" in command:
            continue  # needs a trained checkpoint; generation itself is tested above
        assert cli.main(shlex.split(command)[1:]) == 0
    assert (tmp_path / "eval_report" / "report.html").is_file()


def test_readme_evaluation_python_example(tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", _readme_section(), flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md evaluation example", "exec"), {})
    assert (tmp_path / "eval_report" / "report.json").is_file() and any(tmp_path.glob("*.wav"))

"""The README's examples and the command line, run as a user would run them."""

import json
import math
import re
import shlex
from pathlib import Path

import pytest
import torch

from tokenlm import cli
from tokenlm.audio import read_audio
from tokenlm.eval.analysis import analyze

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_quick_start_generate_command(tmp_path, monkeypatch):
    setup_line = readme_blocks("bash")[0].strip()
    assert setup_line.startswith("bash scripts/setup.sh && .venv/bin/tokenlm generate")
    argv = shlex.split(setup_line.split("&&", 1)[1])
    assert argv[0] == ".venv/bin/tokenlm"
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv[1:]) == 0
    wav, rate = read_audio(tmp_path / "tone.wav")
    assert rate == 16000 and wav.shape == (1, 64000)
    f0 = analyze(wav[0].numpy(), rate).f0_hz  # the shipped default model follows the prompt
    assert f0 is not None and abs(1200 * math.log2(f0 / 880.0)) < 50, f0


def test_quick_start_test_command_is_what_ci_runs():
    test_line = readme_blocks("bash")[1].strip()
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_line in ci


@pytest.mark.parametrize("index", range(len(readme_blocks("python"))))
def test_readme_python_examples(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_blocks("python")[index], f"README.md python block {index}", "exec"), {})
    assert any(tmp_path.glob("*.wav"))


def test_cli_generate_options_and_determinism(tmp_path):
    args = ["generate", "a cat meows", "a door creaks", "--duration", "0.5", "--seed", "3", "--top-k", "50",
            "--top-p", "0.9", "--temperature", "0.8", "--cfg", "2.5", "--quiet", "--out"]
    assert cli.main(args + [str(tmp_path / "a.wav")]) == 0
    assert cli.main(args + [str(tmp_path / "b.wav")]) == 0
    for i in (0, 1):
        a, _ = read_audio(tmp_path / f"a_{i}.wav")
        b, _ = read_audio(tmp_path / f"b_{i}.wav")
        assert a.shape == (1, 8000) and torch.equal(a, b)
    assert not torch.equal(read_audio(tmp_path / "a_0.wav")[0], read_audio(tmp_path / "a_1.wav")[0])


@pytest.mark.parametrize(
    "extra,message",
    [
        (["", "--duration", "1"], "prompt 0 is an empty string"),
        (["ok", "--duration", "-1"], "duration must be > 0 seconds"),
        (["ok", "--top-p", "2"], r"top_p must be a number in \[0, 1\]"),
        (["ok", "--model", "/nonexistent/model"], "checkpoint folder '/nonexistent/model' does not exist"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, extra, message):
    assert cli.main(["generate", *extra, "--quiet", "--out", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tokenlm generate: error:") and len(err.splitlines()) == 1
    assert re.search(message, err)


def test_readme_training_commands(tmp_path, monkeypatch):
    """The README's demo training commands, run as written with fewer steps and less data."""
    block = next(b for b in readme_blocks("bash") if "tokenlm train recipe=tiny_lm" in b)
    monkeypatch.chdir(tmp_path)
    for line in block.strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "tokenlm"
        if argv[1] == "train":
            argv = [re.sub(r"^solver\.steps=\d+$", "solver.steps=6", a) for a in argv]
            if not any(a.startswith("solver.steps=") for a in argv):
                argv.append("solver.steps=4")
            argv += ["data.synth.n=24", "solver.batch_size=4", "checkpoint.every=2", "conditioners.0.vocab_size=40"]
        else:
            argv += ["--quiet"]
        assert cli.main(argv[1:]) == 0, line
    assert (tmp_path / "runs" / "tiny_lm" / "export" / "config.json").is_file()
    assert (tmp_path / "runs" / "tiny_lm_no_rr" / "export" / "config.json").is_file()
    assert read_audio(tmp_path / "tone.wav")[0].shape == (1, 32000)
    steps = [json.loads(line)["step"] for line in (tmp_path / "runs/tiny_lm/metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 6  # resumed from step 4 to 6

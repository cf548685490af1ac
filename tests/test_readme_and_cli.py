"""The README's examples and the command line, run as a user would run them."""

import json
import math
import re
import shlex
import shutil
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
    # a failing test must fail CI: `set -e` does not stop on a failing && chain, so the chain exits itself
    after = ci.split(test_line, 1)[1].lstrip(" \\\n")
    assert after.startswith("|| {") and "exit 1; }" in after.splitlines()[0], after[:200]


#: the Python blocks that run as they are (the ones reading ``path/to/...`` models run in test_readme_weights.py, the
#: HTTP client in test_http_api.py against a server it starts)
SELF_CONTAINED = [block for block in readme_blocks("python") if "path/to/" not in block and "127.0.0.1" not in block]


@pytest.mark.parametrize("index", range(len(SELF_CONTAINED)))
def test_readme_python_examples(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(SELF_CONTAINED[index], f"README.md python block {index}", "exec"), {})
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


# ------------------------------------------------------------------------------------ the level of written files


def test_cli_generate_keeps_the_model_level(tmp_path, capsys):
    """A quiet clip is written at the level the model made, and a batch keeps its relative levels."""
    from tokenlm.api import TextToAudio
    from tokenlm.audio import loudness_lufs

    model = TextToAudio.from_pretrained("default")
    faint = model.generate("faint pink noise", 1.0, seed=0).wav[0]  # [1, N] in memory
    assert faint.abs().max() < 0.2  # quiet: peak normalisation would have raised it by more than 14 dB
    assert cli.main(["generate", "faint pink noise", "--duration", "1", "--seed", "0", "--quiet",
                     "--out", str(tmp_path / "faint.wav")]) == 0
    written, rate = read_audio(tmp_path / "faint.wav")
    assert torch.allclose(written, faint, atol=1 / 32768)  # 16-bit quantization only
    assert loudness_lufs(written, rate) == pytest.approx(loudness_lufs(faint, rate), abs=0.1)
    assert "warning" not in capsys.readouterr().err  # nothing would clip: nothing changed

    prompts = ["a quiet sine tone at 440 Hz", "a loud white noise hiss"]
    pair = model.generate(prompts, 1.0, seed=0).wav  # [2, 1, N]
    assert cli.main(["generate", *prompts, "--duration", "1", "--seed", "0", "--quiet",
                     "--out", str(tmp_path / "pair.wav")]) == 0
    files = [read_audio(tmp_path / f"pair_{i}.wav")[0] for i in (0, 1)]
    levels = [loudness_lufs(wav, rate) for wav in files]
    expected = [loudness_lufs(wav, rate) for wav in pair]
    assert expected[1] - expected[0] > 6  # the model made them far apart ...
    assert levels == pytest.approx(expected, abs=0.1)  # ... and the files keep them so
    assert all(torch.allclose(file, wav, atol=1 / 32768) for file, wav in zip(files, pair, strict=True))


@pytest.fixture(scope="module")
def tiny_model_dir(spm_model_path, tmp_path_factory):
    """A saved tiny random token LM (16 kHz): quick to load and generate from the command line."""
    from conftest import make_tiny_backend

    from tokenlm.api import TextToAudio

    return TextToAudio(make_tiny_backend(spm_model_path)).save_pretrained(tmp_path_factory.mktemp("tiny") / "lm")


@pytest.mark.parametrize(
    "options",
    [[], ["--normalize", "none"], ["--normalize", "clip"], ["--normalize", "peak"], ["--normalize", "rms"],
     ["--normalize", "rms", "--rms-db", "-30"], ["--normalize", "loudness"],
     ["--normalize", "loudness", "--loudness-db", "-23"]],
    ids=["default", "none", "clip", "peak", "rms", "rms-30", "loudness", "loudness-23"],
)
def test_cli_normalize_modes_do_what_they_say(tiny_model_dir, tmp_path, capsys, options):
    from tokenlm.api import TextToAudio
    from tokenlm.audio import loudness_lufs

    wav = TextToAudio.from_pretrained(tiny_model_dir).generate("a dog barks", 1.0, seed=0).wav[0]  # [1, N]
    out = tmp_path / "x.wav"
    assert cli.main(["generate", "a dog barks", "--model", str(tiny_model_dir), "--duration", "1", "--seed", "0",
                     "--quiet", "--subtype", "FLOAT", "--out", str(out), *options]) == 0
    written, rate = read_audio(out)
    err = capsys.readouterr().err
    mode = options[1] if options else "clip"
    ceiling_db = -1.0
    if mode in ("none", "clip"):  # the model's level (it does not clip)
        assert wav.abs().max() < 1 and torch.equal(written, wav) and err == ""
        return
    gain = (written * wav).sum() / (wav * wav).sum()  # a gain, nothing else: the same waveform at another level
    assert torch.allclose(written, gain * wav, atol=1e-6)
    peak_db = 20 * math.log10(written.abs().max().item())
    if mode == "peak":
        assert peak_db == pytest.approx(ceiling_db, abs=1e-5) and err == ""
        return
    target = float(options[3]) if len(options) > 2 else {"rms": -18.0, "loudness": -14.0}[mode]

    def measure(x: torch.Tensor) -> float:  # dBFS RMS or LUFS
        return 20 * math.log10(x.double().pow(2).mean().sqrt().item()) if mode == "rms" else loudness_lufs(x, rate)

    # the target, unless that would put the peak above -1 dBFS: then the peak is held there, and the command says so
    short_by = max(0.0, 20 * math.log10(wav.abs().max().item()) + target - measure(wav) - ceiling_db)
    assert measure(written) == pytest.approx(target - short_by, abs=0.1 if mode == "loudness" else 0.01)
    assert peak_db <= ceiling_db + 1e-5
    if short_by > 0:
        assert peak_db == pytest.approx(ceiling_db, abs=1e-5)
        assert f"scaled down {short_by:.2f} dB to keep peaks at -1 dBFS" in err
    else:
        assert err == ""


def test_cli_says_when_it_scales_down(tiny_model_dir, tmp_path, capsys):
    """An RMS target past the headroom is held at -1 dBFS peak, and the command says so."""
    out = tmp_path / "x.wav"
    assert cli.main(["generate", "a dog barks", "--model", str(tiny_model_dir), "--duration", "1", "--quiet",
                     "--normalize", "rms", "--rms-db", "-1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert re.fullmatch(r"tokenlm generate: warning: '.*x\.wav': -1 dBFS RMS would put its peak at \+\d\.\d\d dBFS; "
                        r"scaled down \d\.\d\d dB to keep peaks at -1 dBFS, so it is at -\d\.\d\d dBFS RMS\n",
                        captured.err), captured.err
    assert f"wrote {out}" in captured.out
    assert read_audio(out)[0].abs().max().item() == pytest.approx(10 ** (-1 / 20), abs=1 / 32768)


@pytest.mark.parametrize(
    "command,extra,message",
    [
        ("generate", ["--normalize", "loud"], "--normalize must be one of none, clip, peak, rms, loudness; got 'loud'"),
        ("generate", ["--subtype", "PCM_8"], "--subtype must be one of PCM_16, PCM_24, FLOAT; got 'PCM_8'"),
        ("generate", ["--subtype", "PCM_24", "--out", "{tmp}/x.ogg"],
         r"subtype 'PCM_24' cannot be written to a '\.ogg' file \(OGG\); OGG takes: \['OPUS', 'VORBIS'\]"),
        ("generate", ["--subtype", "float", "--out", "{tmp}/x.flac"], r"'FLOAT' cannot be written to a '\.flac' file"),
        ("generate", ["--loudness-db", "-20"], "--loudness-db sets the target of --normalize loudness; it does not "
                                               "apply with --normalize clip"),
        ("generate", ["--normalize", "loudness", "--loudness-db", "3"],
         r"--loudness-db must be a finite level in dB at or below 0 \(e.g. -14\), got 3.0"),
        ("generate", ["--normalize", "peak", "--rms-db", "-20"], "--rms-db sets the target of --normalize rms"),
        ("edit", ["--normalize", "lufs"], "--normalize must be one of none, clip, peak, rms, loudness; got 'lufs'"),
        ("edit", ["--subtype", "PCM_32"], "--subtype must be one of PCM_16, PCM_24, FLOAT; got 'PCM_32'"),
    ],
)
def test_cli_bad_output_options_fail_first(tmp_path, capsys, command, extra, message):
    """Refused in one line, before the (here missing) model would load, and nothing is written."""
    extra = [value.format(tmp=tmp_path) for value in extra]
    out = [] if "--out" in extra else ["--out", str(tmp_path / "x.wav")]
    inputs = ["--audio", str(tmp_path / "in.wav")] if command == "edit" else ["--quiet"]
    assert cli.main([command, "a dog", "--model", "/nonexistent/model", *inputs, *out, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tokenlm {command}: error:") and len(err.splitlines()) == 1
    assert re.search(message, err), err
    assert list(tmp_path.iterdir()) == []


def test_readme_states_the_default_level():
    """The README's examples say what level files are written at, and that is the default everywhere."""
    import inspect

    from tokenlm.api import Audio
    from tokenlm.audio import CLI_SUBTYPES, DEFAULT_NORMALIZE, NORMALIZE_MODES, write_audio

    text = README.read_text()
    python_default = re.search(r'audio\.save\("out\.wav"\) +# .*normalize="(\w+)"', readme_blocks("python")[0])
    cli_default = re.search(r"`--normalize (\w+)` \(the default\)", text)
    assert python_default and cli_default
    assert python_default.group(1) == cli_default.group(1) == DEFAULT_NORMALIZE == "clip"
    for function in (Audio.save, write_audio):
        assert inspect.signature(function).parameters["normalize"].default == DEFAULT_NORMALIZE
    parser = cli.build_parser()
    for command in ("generate", "edit"):
        args = parser.parse_args([command, "x", "--audio", "a.wav", "--model", "m"] if command == "edit"
                                 else [command, "x"])
        assert args.normalize == DEFAULT_NORMALIZE and args.subtype is None
    assert f"`--normalize {'|'.join(NORMALIZE_MODES)}`" in text
    assert "`--subtype PCM_16|PCM_24|FLOAT`" in text and "`--loudness-db`" in text
    help_text = parser._subparsers._group_actions[0].choices["generate"].format_help()
    assert f"{{{','.join(NORMALIZE_MODES)}}}" in help_text and f"{{{','.join(CLI_SUBTYPES)}}}" in help_text


def test_readme_real_sound_commands(tmp_path, monkeypatch):
    """The README's real-sound commands, run as written on fewer clips (TimGM6mb for FluidR3, which CI does not
    install) and a few recordings."""
    from tokenlm.data.sources.music.render import SOUNDFONTS

    if not SOUNDFONTS["timgm6mb"][0].is_file() or shutil.which("espeak-ng") is None:
        pytest.skip("needs scripts/setup_data.sh --minimal (.ci/run runs it)")
    block = next(b for b in readme_blocks("bash") if "tokenlm data music" in b)
    monkeypatch.chdir(tmp_path)
    smaller = {"music": ["--soundfont", "timgm6mb", "--real-melodies", "2", "--generated-melodies", "6",
                         "--collections", "bach", "--duration", "3", "--heldout-fraction", "0.3"],
               "speech": [], "recorded": ["--duration", "1"]}
    for line in block.strip().splitlines():
        argv = shlex.split(line)
        if argv[0] == "bash":
            assert argv[1] == "scripts/setup_data.sh"
            continue
        assert argv[0] == "tokenlm"
        if argv[1] == "data":
            argv = [re.sub(r"^\d+$", "8", a) if argv[i - 1] == "--n" else a for i, a in enumerate(argv)]
            argv += smaller[argv[2]] + ["--quiet"]
        else:
            argv += ["--limit", "6"]
        assert cli.main(argv[1:]) == 0, line
    report = json.loads((tmp_path / "detectors.json").read_text())
    heldout = (tmp_path / "data" / "music" / "test_heldout_timgm.jsonl").read_text().splitlines()
    assert report["clips"] == len(heldout) >= 2 and report["key_mode"]["n"] == len(heldout)
    assert report["recordings"]["speech_asterisk_voice"]["n"] == 6
    assert (tmp_path / "data" / "speech" / "train.jsonl").is_file()

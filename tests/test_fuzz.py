"""Bad input at every entry point, fuzzed with hypothesis.

The property everywhere: a valid result, or one of the project's clear errors (``ValueError``, its subclass
``CheckpointError``, or ``FileNotFoundError``) raised by tokenlm's own code with a message that names the offending
parameter, value or file; never a bare torch / numpy / KeyError traceback, never a half-written file. The models are
the tiny ones built in the tests. Runs are derandomized (the same examples on every run) and small, so the whole
module takes well under two minutes; ``TOKENLM_FUZZ_EXAMPLES`` scales every example budget for a longer local hunt.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tokenlm import cli
from tokenlm.api import TextToAudio
from tokenlm.audio import read_audio, write_audio
from tokenlm.data.manifest import read_manifest
from tokenlm.lm.patterns import PATTERNS, build_pattern

try:  # tests/ is on sys.path under pytest's default (prepend) import mode
    from conftest import make_tiny_backend
    from test_ldm import make_ldm
except ImportError:  # importlib import mode, or tests/ made a package
    from tests.conftest import make_tiny_backend
    from tests.test_ldm import make_ldm

REPO = Path(__file__).resolve().parents[1]
PROJECT = (REPO / "tokenlm", REPO / "conditioners")
#: what a caller may be handed for bad input (CheckpointError is a ValueError)
CLEAR_ERRORS = (ValueError, FileNotFoundError)
SCALE = float(os.environ.get("TOKENLM_FUZZ_EXAMPLES", "1"))


def fuzz(examples: int) -> Callable:
    """Hypothesis settings for one property: ``examples`` examples, derandomized, no example database."""
    return settings(
        max_examples=max(1, round(examples * SCALE)), deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def raise_site(error: BaseException) -> Path:
    """The file of the innermost frame that raised ``error``."""
    tb = error.__traceback__
    last = tb
    while tb is not None:
        last, tb = tb, tb.tb_next
    return Path(last.tb_frame.f_code.co_filename).resolve()


def assert_clear(error: BaseException, names: list[str]) -> None:
    """``error`` is a clear project error: the right type, raised in tokenlm's own code, naming one of ``names``."""
    assert isinstance(error, CLEAR_ERRORS), f"{type(error).__name__}: {error}"
    site = raise_site(error)
    assert any(site.is_relative_to(root) for root in PROJECT), f"raised in {site}: {type(error).__name__}: {error}"
    message = str(error)
    assert any(name and name in message for name in names), f"{message!r} names none of {names}"


# ---------------------------------------------------------------------------------------------- strategies

#: anything a caller might pass where a number or a name belongs
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), st.binary(max_size=4),
    st.lists(st.integers(-3, 3), max_size=2), st.just(float("nan")), st.just(-1), st.just(0),
)
good_text = st.sampled_from(["a beep", "a low hum twice", "🔔 ring ×2", "a" * 300, "x"]) | st.text(
    min_size=1, max_size=20).filter(str.strip)
good_prompts = st.one_of(good_text, st.lists(good_text, min_size=1, max_size=3),
                         st.fixed_dictionaries({"description": good_text}))
bad_prompts = st.one_of(
    st.sampled_from(["", "   ", "\t\n", [], {}]), st.lists(good_text | st.just("") | junk, min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=12), junk, min_size=1, max_size=2), junk,
)
#: durations that must be refused: not a number, not finite, not positive, or more than memory holds (a long but
#: possible duration is slow, not wrong, so none is drawn)
bad_durations = junk.filter(lambda v: not (isinstance(v, (int, float)) and 0 < v < 1e9)) | st.floats(1e9, 1e300)
#: junk that is not a valid diffusion step count of more than a few steps (valid ones are slow, not wrong)
junk_steps = junk.filter(lambda v: not (isinstance(v, int) and 4 < v <= 1000))


@st.composite
def arguments(draw: st.DrawFn, valid: dict[str, st.SearchStrategy], bad: dict[str, st.SearchStrategy],
              always_bad: tuple[str, ...] = ()) -> tuple[str | None, dict[str, Any]]:
    """``(broken, kwargs)``: a few keyword arguments with valid values, and at most one, ``broken``, given junk
    (``bad[key]``, default :data:`junk`) or an argument in ``always_bad`` (another backend's) with a valid value."""
    broken = draw(st.sampled_from([None, *sorted(bad), *always_bad]))
    keys = draw(st.lists(st.sampled_from(sorted(k for k in valid if k not in always_bad)), max_size=3, unique=True))
    kwargs = {key: draw(valid[key]) for key in keys if key != broken}
    if broken in always_bad:
        kwargs[broken] = draw(valid[broken])
    elif broken is not None and broken in valid:
        kwargs[broken] = draw(bad.get(broken, junk))
    return broken, kwargs


def call(function: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """``(function(), None)``, or ``(None, the exception)``; the outcome is a hypothesis event (shown with
    ``--hypothesis-show-statistics``), so a run tells how many examples gave a result and how many a clear error."""
    try:
        result = function()
    except Exception as error:  # noqa: BLE001 - the property inspects whatever came out
        event(f"refused: {type(error).__name__}")
        return None, error
    event("valid result")
    return result, None


# ---------------------------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def lm_model(spm_model_path: Path) -> TextToAudio:
    return TextToAudio(make_tiny_backend(spm_model_path))


@pytest.fixture(scope="module")
def ldm_model(spm_model_path: Path) -> TextToAudio:
    return TextToAudio(make_ldm(spm_model_path))


@pytest.fixture(scope="module")
def checkpoint(lm_model: TextToAudio, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lm_model.save_pretrained(tmp_path_factory.mktemp("fuzz_ckpt") / "ckpt")


LM_VALID = {
    "top_k": st.integers(0, 300), "top_p": st.floats(0, 1), "temperature": st.floats(0, 3),
    "cfg_coef": st.floats(0, 10), "two_step_cfg": st.booleans(), "seed": st.integers(0, 2**64 - 1),
    "extend_stride": st.floats(0.01, 1.0), "prompt_sample_rate": st.sampled_from([8000, 16000]),
    "prompt": good_prompts, "duration": st.floats(0.02, 0.1),
    # the diffusion backends' arguments: an LM refuses them by name
    "steps": st.integers(1, 3), "cfg_rescale": st.floats(0, 1), "scheduler": st.sampled_from(["ddim", "dpmpp"]),
    "negative_prompt": good_text,
}
LM_BAD = {**{key: junk for key in LM_VALID if key not in ("prompt_sample_rate", "prompt", "duration")},
          "prompt": bad_prompts, "duration": bad_durations}
LM_FOREIGN = ("steps", "cfg_rescale", "scheduler", "negative_prompt")


@fuzz(160)
@given(case=arguments(LM_VALID, {k: v for k, v in LM_BAD.items() if k not in LM_FOREIGN}, LM_FOREIGN))
def test_generate_takes_any_input(lm_model: TextToAudio, case: tuple[str | None, dict[str, Any]]) -> None:
    """One argument at a time gets junk (or another backend's argument): the error names it."""
    broken, kwargs = case
    prompt, duration = kwargs.pop("prompt", "a beep"), kwargs.pop("duration", 0.05)
    audio, error = call(lambda: lm_model.generate(prompt, duration, **kwargs))
    if error is not None:
        bad_value = {"prompt": prompt, "duration": duration, **kwargs}.get(broken)
        keys = [repr(key) for key in prompt] if isinstance(prompt, dict) else []  # "attribute 'genre' ..."
        names = [broken, repr(bad_value), *keys] if broken else ["prompt", "duration", *kwargs, *keys]
        assert_clear(error, names)
        return
    batch = 1 if isinstance(prompt, (str, dict)) else len(prompt)
    assert audio.wav.shape == (batch, 1, round(duration * lm_model.sample_rate))
    assert bool(torch.isfinite(audio.wav).all())


@fuzz(50)
@given(
    shape=st.lists(st.integers(0, 3), min_size=0, max_size=4).map(tuple),
    fill=st.sampled_from([0.1, float("nan"), float("inf"), 1e30]),
    rate=junk | st.sampled_from([8000, 16000, 44100]),
    dtype=st.sampled_from([torch.float32, torch.int16, torch.float64, torch.bool]),
)
def test_generate_takes_any_prompt_audio(lm_model: TextToAudio, shape: tuple, fill: float, rate: Any,
                                         dtype: torch.dtype) -> None:
    """Prompt audio of any shape, dtype, rate and content (NaN / inf included) continues, or is refused by name."""
    wav = torch.full((*shape[:-1], shape[-1] * 400) if shape else (), fill).to(dtype)
    audio, error = call(lambda: lm_model.generate("a beep", 0.1, prompt_audio=wav, prompt_sample_rate=rate, seed=0))
    if error is not None:
        assert_clear(error, ["prompt_audio", "prompt_sample_rate", "audio prompt", repr(rate)])
        return
    assert audio.wav.shape[-1] == round(0.1 * lm_model.sample_rate) and bool(torch.isfinite(audio.wav).all())


EDIT_VALID = {
    "sample_rate": st.sampled_from([16000, 8000, 22050]), "strength": st.floats(0, 1),
    "mask": st.tuples(st.floats(0, 0.02), st.floats(0.005, 0.02)).map(lambda t: (t[0], t[0] + t[1])),
    "cutoff_hz": st.floats(100, 7000), "steps": st.integers(1, 3), "cfg_coef": st.floats(0, 10),
    "cfg_rescale": st.floats(0, 1), "scheduler": st.sampled_from(["ddim", "dpmpp"]), "seed": st.integers(0, 2**32),
    "mode": st.sampled_from(["style", "inpaint", "superres"]), "seconds": st.sampled_from([0.05, 0.3]),
}
#: the options that belong to one editing mode
EDIT_MODE_OF = {"mask": "inpaint", "cutoff_hz": "superres", "strength": "style"}
EDIT_BAD = {
    **dict.fromkeys(EDIT_VALID, junk), "steps": junk_steps, "sample_rate": junk_steps,
    "mask": junk | st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True)) | st.lists(junk, max_size=3),
    "seconds": st.sampled_from([0.0, 5.0]),  # an empty input, one longer than the model's window
}


@fuzz(100)
@given(case=arguments(EDIT_VALID, EDIT_BAD))
def test_edit_takes_any_input(ldm_model: TextToAudio, case: tuple[str | None, dict[str, Any]]) -> None:
    """One argument (or the input audio) at a time gets junk: the error names it."""
    broken, kwargs = case
    rate = ldm_model.sample_rate
    mode, seconds = kwargs.pop("mode", "style"), kwargs.pop("seconds", 0.3)
    if broken in EDIT_MODE_OF:  # an option of one mode is tried with that mode
        mode = EDIT_MODE_OF[broken]
    kwargs = {key: value for key, value in kwargs.items() if key == broken or EDIT_MODE_OF.get(key, mode) == mode}
    if mode == "inpaint" and "mask" not in kwargs:
        kwargs["mask"] = (0.0, 0.04)  # inpainting needs a span; its absence is tested in tests/test_ldm.py
    kwargs = {"sample_rate": rate, "steps": 2, **kwargs}
    source_rate = kwargs["sample_rate"] if broken != "sample_rate" else rate
    wav = 0.1 * torch.sin(torch.arange(round(seconds * source_rate)) / 10.0)[None]  # [1, N]
    audio, error = call(lambda: ldm_model.edit("a beep", wav, mode=mode, **kwargs))
    if error is not None:
        bad_value = {"mode": mode, **kwargs}.get(broken)
        names = [broken, repr(bad_value)] if broken not in (None, "seconds") else [*kwargs, "mode", "audio", "input"]
        assert_clear(error, names)
        return
    expected = round(wav.shape[-1] * rate / kwargs["sample_rate"])
    assert abs(audio.wav.shape[-1] - expected) <= 1 and bool(torch.isfinite(audio.wav).all())


# ---------------------------------------------------------------------------------------------- loading


#: junk for config values: no mid-sized numbers (a 10**9-wide layer is a slow, huge allocation, not a wrong one)
config_junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.just(10**30), st.just(-(10**30)),
                        st.sampled_from([float("nan"), float("inf"), -0.5, 1e-300]), st.text(max_size=6),
                        st.lists(st.integers(-3, 3), max_size=2), st.dictionaries(st.text(max_size=3), st.none(),
                                                                                    max_size=1))


def _mutate_json(text: str, data: st.DataObject) -> str:
    """config.json with a key dropped, added, or given a junk value; or not JSON at all."""
    config = json.loads(text)
    action = data.draw(st.sampled_from(["drop", "add", "junk", "nested", "bytes", "truncate"]))
    keys = sorted(config)
    if action == "drop":
        config.pop(data.draw(st.sampled_from(keys)))
    elif action == "add":
        config[data.draw(st.text(max_size=8))] = data.draw(config_junk)
    elif action == "junk":
        config[data.draw(st.sampled_from(keys))] = data.draw(config_junk)
    elif action == "nested":
        key = data.draw(st.sampled_from([k for k in keys if isinstance(config[k], dict)] or keys))
        if isinstance(config[key], dict) and config[key]:
            inner = data.draw(st.sampled_from(sorted(config[key])))
            config[key][inner] = data.draw(config_junk)
    elif action == "bytes":
        return data.draw(st.text(max_size=40))
    else:
        return text[: data.draw(st.integers(0, len(text) - 1))]
    return json.dumps(config, default=repr)


@fuzz(80)
@given(data=st.data(), target=st.sampled_from(["config.json", "model.safetensors", "codec/config.json",
                                               "codec/model.safetensors", "folder"]))
def test_from_pretrained_takes_any_folder(checkpoint: Path, data: st.DataObject, target: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / data.draw(st.sampled_from(["ckpt", "ckpt ünï", "a b"]))
        shutil.copytree(checkpoint, folder)
        if target == "folder":
            what = data.draw(st.sampled_from(["missing", "file", "empty"]))
            shutil.rmtree(folder)
            if what == "file":
                folder.write_bytes(b"not a folder")
            elif what == "empty":
                folder.mkdir()
        else:
            path = folder / target
            if path.suffix == ".json":
                path.write_text(_mutate_json(path.read_text(), data))
            else:
                content = path.read_bytes()
                choice = data.draw(st.sampled_from(["truncate", "zero", "random", "delete"]))
                if choice == "truncate":
                    path.write_bytes(content[: data.draw(st.integers(0, len(content) - 1))])
                elif choice == "zero":
                    path.write_bytes(b"")
                elif choice == "random":
                    path.write_bytes(data.draw(st.binary(min_size=1, max_size=64)))
                else:
                    path.unlink()
        model, error = call(lambda: TextToAudio.from_pretrained(folder))
    if error is not None:
        assert_clear(error, [folder.name, target.split("/")[-1], "config", "codec"])
        return
    # what loads generates, or refuses clearly (a config edited to cfg_dropout 0 refuses guidance, for one)
    audio, error = call(lambda: model.generate("a beep", 0.05, seed=0))
    if error is not None:
        assert_clear(error, ["cfg", "top_k", "top_p", "temperature", "sampling", "duration"])
        return
    assert audio.wav.shape[-1] == round(0.05 * model.sample_rate) and bool(torch.isfinite(audio.wav).all())


@fuzz(30)
@given(path=st.text(max_size=12) | st.sampled_from(["", ".", "/", "default-nope", "/dev/null", "\x00"]))
def test_from_pretrained_takes_any_path(path: str) -> None:
    assume(path not in ("default", "default-ldm"))  # the shipped models load (tests/test_default_models.py)
    model, error = call(lambda: TextToAudio.from_pretrained(path))
    assert error is not None, f"{path!r} loaded as a model"
    assert_clear(error, [path, repr(path), str(Path(path))])


# ---------------------------------------------------------------------------------------------- files

#: a 16 kHz mono PCM_16 WAV header up to the "data" tag: what a truncated or padded file starts with
WAV_HEADER = (b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00"
              b"\x00\x7d\x00\x00\x02\x00\x10\x00data")


@pytest.fixture(scope="module")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The bytes of a valid short WAV and FLAC, to truncate."""
    folder = tmp_path_factory.mktemp("fuzz_audio")
    wav = 0.2 * torch.sin(torch.arange(1600) / 5.0)[None]
    return {ext: write_audio(folder / f"clip.{ext}", wav, 16000, normalize="none").read_bytes()
            for ext in ("wav", "flac")}


@fuzz(120)
@given(data=st.data(), ext=st.sampled_from(["wav", "flac", "ogg", "mp3", "txt"]))
def test_audio_readers_take_any_file(real_files: dict[str, bytes], data: st.DataObject, ext: str) -> None:
    source = real_files.get(ext, real_files["wav"])
    content = data.draw(st.one_of(
        st.just(b""), st.binary(max_size=64), st.integers(0, len(source)).map(lambda n: source[:n]),
        st.binary(max_size=32).map(lambda tail: WAV_HEADER + tail),
    ))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip ü.{ext}"
        path.write_bytes(content)
        result, error = call(lambda: read_audio(path))
    if error is not None:
        assert_clear(error, [str(path)])
        return
    wav, rate = result
    assert wav.dim() == 2 and rate > 0 and bool(torch.isfinite(wav).all())


manifest_values = junk.filter(lambda v: not isinstance(v, bytes)) | st.text(max_size=10)


@fuzz(120)
@given(lines=st.lists(st.one_of(
    st.dictionaries(st.sampled_from(["path", "duration", "sample_rate", "channels", "description", "x"]),
                    manifest_values, max_size=5).map(lambda d: json.dumps(d, default=repr)),
    st.fixed_dictionaries({"path": st.just("clip.wav"), "duration": st.floats(allow_nan=True, allow_infinity=True),
                           "sample_rate": junk.filter(lambda v: not isinstance(v, bytes))}).map(
                               lambda d: json.dumps(d, default=repr)),
    st.text(max_size=30), st.just(""), st.just("[1, 2]"), st.just('{"path": "a.wav"'),
), max_size=4))
def test_manifest_reader_takes_any_file(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.jsonl"
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass") if _encodable(lines) else \
            path.write_bytes("\n".join(lines).encode("utf-8", errors="replace"))
        entries, error = call(lambda: read_manifest(path))
    if error is not None:
        assert_clear(error, [str(path), "data.jsonl"])
        return
    for entry in entries:
        assert math.isfinite(entry.duration) and entry.sample_rate > 0 and entry.path


def _encodable(lines: list[str]) -> bool:
    try:
        "\n".join(lines).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- command line

CLI_VALUES = st.one_of(st.text(max_size=8), st.sampled_from(["-1", "0", "nan", "inf", "1e999", "", "é", "5", "0.05",
                                                             "--", "-x", "99999999999999999999"]))


@st.composite
def cli_argv(draw: st.DrawFn, folder: Path, checkpoint: Path) -> list[str]:
    """A command line of a tokenlm subcommand with adversarial values; files point into ``folder`` (missing, empty,
    junk) or at the tiny checkpoint, never at anything that would train or write outside ``folder``."""
    junk_file = folder / "junk.wav"
    paths = st.sampled_from([str(folder / "missing.wav"), str(junk_file), str(folder), str(checkpoint), "",
                             str(folder / "ü dir" / "x.jsonl")])
    out = st.sampled_from([str(folder / "out.wav"), str(folder / "out.ogg"), str(folder / "out.xyz"),
                           str(folder / "no" / "such" / "dir" / "out.wav"), str(folder)])
    command = draw(st.sampled_from(["generate", "edit", "convert", "data index", "data encode", "data synth", "eval",
                                    "codec eval", "codec export", "train"]))
    argv = command.split()
    value = CLI_VALUES | paths
    if command == "generate":
        argv += [draw(st.text(max_size=10) | st.just("a beep")), "--model", str(checkpoint), "--out", draw(out)]
        flags = ["--duration", "--seed", "--top-k", "--top-p", "--temperature", "--cfg", "--steps", "--scheduler",
                 "--normalize", "--subtype", "--loudness-db", "--rms-db", "--prompt-audio", "--threads", "--backend"]
        if draw(st.booleans()):
            argv += ["--duration", draw(st.sampled_from(["0.05", "-1", "nan", "inf", "1e9", "0", "x"]))]
    elif command == "edit":
        argv += ["a beep", "--audio", draw(paths), "--model", draw(paths), "--out", draw(out)]
        flags = ["--mode", "--strength", "--mask", "--cutoff-hz", "--steps", "--cfg", "--normalize", "--subtype"]
    elif command == "convert":
        argv += [draw(st.sampled_from(["musicgen-hf", "audiocraft", "encodec", "nope"])), draw(paths),
                 str(folder / "converted")]
        flags = ["--t5", "--encodec", "--bandwidth"]
    elif command == "data index":
        argv += [draw(paths), "--out", str(folder / "index.jsonl"), "--quiet"]
        flags = []
    elif command == "data encode":
        argv += [draw(paths), "--model-or-codec", draw(paths), "--out", str(folder / "cache"), "--quiet"]
        flags = ["--segment-duration", "--bandwidth", "--batch-size", "--shard-size"]
    elif command == "data synth":  # small or refused sizes only: a big valid data set is just slow, not wrong
        argv += ["--n", draw(st.sampled_from(["0", "-3", "2", "x", "1e3", ""])), "--out", str(folder / "synth"),
                 "--duration", draw(st.sampled_from(["0.5", "1-2", "-1", "nan", "2-1", "x", "0", "1e9"]))]
        flags = ["--seed", "--workers", "--preset"]
    elif command == "eval":
        argv += ["--manifest", draw(paths), "--out", str(folder / "report")]
        flags = ["--limit", "--seed", "--set-size", "--shuffles", "--duration"]
    elif command == "codec eval":
        argv += [draw(paths), "--manifest", draw(paths)]
        flags = ["--bandwidth", "--limit"]
    elif command == "codec export":
        argv += [draw(paths), "--out", str(folder / "exported")]
        flags = []
    else:  # train: overrides that cannot compose, so nothing trains
        argv += draw(st.lists(st.text(max_size=10).filter(lambda t: "=" not in t and t.strip()) |
                              st.text(max_size=8).map(lambda t: f"recipe=fuzz_{t}"), min_size=1, max_size=2))
        flags = []
    for flag in draw(st.lists(st.sampled_from(flags), max_size=3, unique=True)) if flags else []:
        argv += [flag, draw(value)]
    return argv


@fuzz(100)
@given(data=st.data())
def test_every_subcommand_fails_in_one_line_or_works(checkpoint: Path, data: st.DataObject,
                                                     capsys: pytest.CaptureFixture) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "junk.wav").write_bytes(b"\x00\x01not audio")
        argv = data.draw(cli_argv(folder, checkpoint))
        before = {p for p in folder.rglob("*")}
        try:
            status = cli.main(argv)
        except SystemExit as stop:  # argparse: a usage line and exit status 2
            status = stop.code
        captured = capsys.readouterr()
        written = {p for p in folder.rglob("*")} - before
        usage = status == 2 and "usage:" in captured.err
        event(f"{' '.join(argv[:2]) if argv[0] in ('data', 'codec') else argv[0]}: "
              f"{'ok' if status == 0 else 'usage error' if usage else 'error'}")
        if status == 0:
            return
        assert status == 2, (argv, status)
        error_lines = [line for line in captured.err.splitlines() if "error:" in line]
        assert error_lines, (argv, captured.err[-2000:])
        assert "Traceback" not in captured.err, (argv, captured.err[-3000:])
        # a failed command leaves no half-written output behind (folders it made on the way may stay)
        leftovers = [p for p in written if p.is_file()]
        assert not leftovers, (argv, leftovers, captured.err[-500:])


# ---------------------------------------------------------------------------------------------- patterns


@fuzz(300)
@given(kind=st.sampled_from(PATTERNS), num_codebooks=st.integers(1, 6), num_frames=st.integers(0, 40),
       prompt=st.integers(0, 45), batch=st.integers(1, 3), data=st.data())
def test_patterns_round_trip_with_any_prompt_length(kind: str, num_codebooks: int, num_frames: int, prompt: int,
                                                    batch: int, data: st.DataObject) -> None:
    """revert(build(codes)) == codes for every pattern, K, T and prompt length, where the frames after the prompt
    are the unknown token, as in generation; delay patterns also with random per-codebook delays."""
    delays = None
    if kind == "delay" and data.draw(st.booleans()):
        delays = data.draw(st.lists(st.integers(0, 5), min_size=num_codebooks, max_size=num_codebooks))
    pattern = build_pattern(kind, num_codebooks, num_frames, delays)
    codes = torch.randint(0, 2048, (batch, num_codebooks, num_frames), generator=torch.Generator().manual_seed(0))
    codes[..., min(prompt, num_frames):] = -1  # not generated yet
    sequence = pattern.build(codes, 2048)  # [B, K, S]
    assert sequence.shape == (batch, num_codebooks, pattern.num_steps)
    assert torch.equal(pattern.revert(sequence), codes)
    assert bool((sequence[:, ~pattern.valid] == 2048).all())  # every empty step holds the special token

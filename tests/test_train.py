"""Training from recipes: presets compose and train, loss falls, resume is exact, DDP equals one process."""

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tokenlm import TextToAudio
from tokenlm.train.main import available_recipes, compose_recipe, run

try:  # tests/ is on sys.path under pytest's default (prepend) import mode
    from conftest import metrics, tiny_recipe_overrides
except ImportError:  # importlib import mode, or tests/ made a package
    from tests.conftest import metrics, tiny_recipe_overrides

REPO = Path(__file__).resolve().parents[1]
tiny_overrides = functools.partial(tiny_recipe_overrides, warmup_steps=2, settings=("conditioners.0.vocab_size=24",))


def train_losses(run_dir: Path) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in metrics(run_dir) if "loss" in m}


def test_presets_are_listed():
    assert {"demo_lm", "sfx_lm", "music_lm"} <= set(available_recipes())


def test_music_and_sfx_presets_compose_with_their_documented_sizes():
    for name, rate in (("music_lm", 2.2), ("sfx_lm", None)):
        cfg = compose_recipe([f"recipe={name}", "codec.path=/x", "conditioners.0.params.encoder_path=/y",
                              "data.train=/z.jsonl"])
        assert cfg["model"]["dim"] == 1024 and cfg["model"]["num_layers"] == 24 and cfg["model"]["num_heads"] == 16
        assert cfg["codec"]["bandwidth"] == rate and cfg["pattern"] == "delay"
        assert cfg["conditioners"][0]["kind"] == "t5"
        assert cfg["solver"]["rr"] == {"enabled": True, "weight": 3.0, "pooling": "max", "mode": "cfg", "gather": True}
        assert cfg["solver"]["cfg_dropout"] == 0.1 and cfg["solver"]["ema_decay"] == 0.99
    assert compose_recipe(["recipe=music_lm", "codec.path=/x", "conditioners.0.params.encoder_path=/y",
                           "data.train=/z"])["data"]["segment_duration"] == 30.0


def test_recipe_errors_name_the_problem():
    with pytest.raises(ValueError, match="recipe presets: demo_clap, demo_codec, demo_ldm, demo_ldm_clap, demo_lm"):
        compose_recipe(["recipe=nope"])
    with pytest.raises(ValueError, match="solver.no_such_key|no_such_key"):
        compose_recipe(["solver.no_such_key=1"])
    with pytest.raises(ValueError, match="codec.path"):
        compose_recipe(["recipe=music_lm", "conditioners.0.params.encoder_path=/y", "data.train=/z"])


@pytest.mark.parametrize("preset", ["sfx_lm", "music_lm"])
def test_large_presets_train_two_steps_with_tiny_overrides(preset, tmp_path, tiny_manifest, tiny_t5_dir):
    from tokenlm.codecs import EncodecCodec, tiny_encodec_config

    codec_dir = tmp_path / "codec"
    EncodecCodec.from_config(tiny_encodec_config(), seed=0).save_pretrained(codec_dir)
    overrides = tiny_overrides(tmp_path / "run", tiny_manifest, 2)
    overrides = [o for o in overrides if not o.startswith("conditioners.0.vocab_size")]
    out = run([f"recipe={preset}", *overrides, "model=lm_tiny", f"codec.path={codec_dir}", "codec.bandwidth=null",
               f"conditioners.0.params.encoder_path={tiny_t5_dir}"])
    assert len(train_losses(tmp_path / "run")) == 2
    model = TextToAudio.from_pretrained(out)
    assert model.attributes == ["description"]
    audio = model.generate("a steady tone at 300 hz", 0.3, seed=0, return_codes=True)
    assert audio.wav.shape == (1, 1, 4800)
    torch.testing.assert_close(audio.wav, model.backend.decode(audio.codes)[..., :4800])
    # the presets' T5 is a frozen encoder: the exported model holds it exactly as it was given
    from transformers import T5EncoderModel

    frozen = model.backend.conditioning.conditioners["description"].encoder.state_dict()
    given = T5EncoderModel.from_pretrained(tiny_t5_dir).state_dict()
    assert frozen.keys() == given.keys() and all(torch.equal(frozen[name], given[name]) for name in given)


def test_demo_training_loss_falls_and_export_generates(tmp_path, tiny_manifest):
    out = run(tiny_overrides(tmp_path / "run", tiny_manifest, 40, "checkpoint.every=20", "valid.every=20",
                             "samples.every=40", "samples.duration=0.5"))
    losses = train_losses(tmp_path / "run")
    ce = {m["step"]: m["ce"] for m in metrics(tmp_path / "run") if "ce" in m}
    assert len(losses) == 40
    assert sum(ce[s] for s in range(31, 41)) / 10 < sum(ce[s] for s in range(1, 11)) / 10 - 0.3
    assert [m["valid_ce"] for m in metrics(tmp_path / "run") if "valid_ce" in m]
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())[0].startswith("step_00000040")
    # the exported folder is an inference checkpoint the CLI generates from
    from tokenlm import cli

    assert cli.main(["generate", "a steady tone at 300 hz", "--model", str(out), "--duration", "0.5",
                     "--quiet", "--out", str(tmp_path / "x.wav")]) == 0
    assert (tmp_path / "x.wav").is_file()


def test_rr_on_and_off_both_train(tmp_path, tiny_manifest):
    on = tiny_overrides(tmp_path / "on", tiny_manifest, 6, "solver.cfg_dropout=0.5")
    run(on)
    off = tiny_overrides(tmp_path / "off", tiny_manifest, 6, "solver.cfg_dropout=0.5", "solver.rr.enabled=false")
    run(off)
    with_rr = [m for m in metrics(tmp_path / "on") if m.get("cfg") == 1.0]
    assert with_rr and all("rr" in m and m["loss"] > m["ce"] for m in with_rr)
    assert all(m["loss"] == pytest.approx(m["ce"] + 3.0 * m["rr"], abs=1e-5) for m in with_rr)
    # RR is a loss of condition-dropped batches only: the others train on the cross-entropy alone
    without_rr = [m for m in metrics(tmp_path / "on") if m.get("cfg") == 0.0]
    assert without_rr and all("rr" not in m and m["loss"] == m["ce"] for m in without_rr)
    assert not any("rr" in m for m in metrics(tmp_path / "off"))
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in metrics(tmp_path / "off") if "loss" in m)


def _train_process(args: list[str], nproc: int = 1, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "tokenlm.train", *args]
    else:
        cmd = [sys.executable, "-m", "tokenlm.train", *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: torchrun's workers die with it


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        # torchrun starts each worker in a session of its own: find them by their command line
        marker = next(a for a in process.args if a.startswith("run_dir="))
        subprocess.run(["pkill", "-9", "-f", marker], check=False)
        out, _ = process.communicate()
        raise AssertionError(f"training did not finish in {timeout} s:\n{out[-3000:]}") from None
    assert process.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=lambda how: how.name)
def test_resume_after_a_kill_is_exact(tmp_path, tiny_manifest, how):
    from safetensors.torch import load_file

    from tokenlm.train.trainer import SIGNAL_AFTER_STEP_ENV

    steps = 16
    common = ["checkpoint.every=4", "solver.cfg_dropout=0.3"]
    _finish(_train_process(tiny_overrides(tmp_path / "straight", tiny_manifest, steps, *common)))
    reference = train_losses(tmp_path / "straight")

    interrupted = tiny_overrides(tmp_path / "cut", tiny_manifest, steps, *common)
    # the run signals itself once step 9 is logged: the same stop on any machine, however fast
    process = _train_process(interrupted, env={SIGNAL_AFTER_STEP_ENV: f"9:{how.name}"})
    out, _ = process.communicate(timeout=300)
    assert process.returncode == (-signal.SIGKILL if how == signal.SIGKILL else 0), out[-3000:]
    assert sorted(train_losses(tmp_path / "cut")) == list(range(1, 10))
    latest = (tmp_path / "cut" / "checkpoints" / "latest").read_text()
    assert latest == ("step_00000008" if how == signal.SIGKILL else "step_00000009")  # SIGTERM checkpoints first
    _finish(_train_process(interrupted + ["resume=true"]))
    resumed = train_losses(tmp_path / "cut")
    assert sorted(resumed) == list(range(1, steps + 1))
    for step in range(1, steps + 1):
        assert resumed[step] == pytest.approx(reference[step], abs=1e-6), step
    # the averaged weights carry on from the checkpoint, and the export holds them
    final = f"checkpoints/step_{steps:08d}/ema.safetensors"
    ema, resumed_ema = load_file(str(tmp_path / "straight" / final)), load_file(str(tmp_path / "cut" / final))
    exported = load_file(str(tmp_path / "cut" / "export" / "model.safetensors"))
    for name, value in ema.items():
        torch.testing.assert_close(resumed_ema[name], value, rtol=0, atol=1e-6, msg=name)
        assert torch.equal(exported[name], resumed_ema[name].to(exported[name].dtype)), name


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(tmp_path, tiny_manifest):
    # same global batch of 4: one process with 4, or two ranks with 2 each (gloo on CPU); RR gathers across ranks
    common = ["solver.cfg_dropout=0.5", "checkpoint.every=0"]
    single = _train_process(tiny_overrides(tmp_path / "one", tiny_manifest, 5, *common))
    _finish(single)
    double = _train_process(tiny_overrides(tmp_path / "two", tiny_manifest, 5, *common), nproc=2)
    _finish(double, timeout=90)
    one, two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert any(m.get("cfg") == 1.0 for m in one)  # RR was exercised
    for a, b in zip(one, two, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=2e-5), a["step"]


def test_non_finite_losses_stop_training_with_a_clear_message(tmp_path, tiny_manifest):
    with pytest.raises(RuntimeError, match="NaN/inf for 2 steps in a row"):
        run(tiny_overrides(tmp_path / "nan", tiny_manifest, 30, "solver.lr=1e30", "solver.grad_clip=1e30",
                           "solver.warmup_steps=0", "solver.max_nonfinite=2"))


def test_training_from_a_token_cache(tmp_path, tiny_manifest):
    from tokenlm import cli

    run(tiny_overrides(tmp_path / "a", tiny_manifest, 1))
    assert cli.main(["data", "encode", str(tiny_manifest / "train.jsonl"), "--model-or-codec",
                     str(tmp_path / "a" / "init"), "--out", str(tmp_path / "cache"), "--quiet"]) == 0
    run(tiny_overrides(tmp_path / "b", tiny_manifest, 3, f"data.cache={tmp_path / 'cache'}"))
    assert len(train_losses(tmp_path / "b")) == 3


def test_tensorboard_logs_and_cli_train(tmp_path, tiny_manifest, capfd, monkeypatch):
    from tokenlm import cli
    from tokenlm.common.progress import INTERVAL_ENV

    monkeypatch.setenv(INTERVAL_ENV, "3600")
    overrides = [o for o in tiny_overrides(tmp_path / "r", tiny_manifest, 2) if o != "log.tensorboard=false"]
    assert cli.main(["train", *overrides]) == 0
    assert list((tmp_path / "r" / "tensorboard").glob("events.out.tfevents.*"))
    assert [m["step"] for m in metrics(tmp_path / "r") if "loss" in m] == [1, 2]  # every step still logged
    # stderr is not a terminal here: progress is a start and an end line, not a redraw per step
    err = capfd.readouterr().err
    assert "\r" not in err
    progress = [line for line in err.splitlines() if line.startswith("training:")]
    assert len(progress) == 2 and progress[0].startswith("training: 0/2 steps"), err[-2000:]
    assert progress[1].startswith("training: 2/2 steps (100%)") and "loss=" in progress[1]


def test_rr_sends_no_gradient_into_a_frozen_text_encoder(tiny_t5_dir):
    from conditioners.text.t5 import T5Conditioner
    from tokenlm.codecs import EncodecCodec, tiny_encodec_config
    from tokenlm.lm.backend import LMBackend
    from tokenlm.lm.model import LMConfig, LMModel
    from tokenlm.lm.objective import LMObjective, lm_loss

    torch.manual_seed(0)
    codec = EncodecCodec.from_config(tiny_encodec_config(), seed=0)
    text = T5Conditioner("description", 32, str(tiny_t5_dir))
    lm = LMModel(LMConfig(num_codebooks=4, cardinality=128, dim=32, num_layers=1, num_heads=2, ffn_dim=64))
    backend = LMBackend(lm, codec, [text], max_duration=1.0).train()
    codes = torch.randint(0, 128, (3, 4, 10))
    attrs = [{"description": d} for d in ("a dog barks", "rain falls softly", "a bell rings twice")]
    losses = lm_loss(backend, codes, torch.ones(3, 10, dtype=torch.bool), attrs, torch.ones(3, dtype=torch.bool),
                     LMObjective())
    assert losses["rr"] > 0 and torch.isclose(losses["loss"], losses["ce"] + 3.0 * losses["rr"])
    losses["loss"].backward()
    assert all(p.grad is None for p in text.encoder.parameters())
    assert lm.blocks[0].fc1.weight.grad.abs().sum() > 0


def test_demo_recipe_generates_its_synthetic_data_and_trains(tmp_path):
    out = run(["recipe=tiny_lm", f"run_dir={tmp_path / 'run'}", f"data.synth.out={tmp_path / 'synth'}",
               "data.synth.n=40", "solver.steps=12", "solver.batch_size=4", "checkpoint.every=0",
               "log.tensorboard=false", "conditioners.0.vocab_size=48", "device=cpu"])
    assert (tmp_path / "synth" / "train.jsonl").is_file() and list((tmp_path / "synth" / "audio").rglob("*.wav"))
    ce = [m["ce"] for m in metrics(tmp_path / "run") if "ce" in m]
    assert len(ce) == 12 and sum(ce[-4:]) / 4 < sum(ce[:4]) / 4
    assert TextToAudio.from_pretrained(out).generate("a beep", 0.2, seed=0).wav.shape == (1, 1, 3200)


def test_rr_study_arms_differ_only_in_rr():
    def flat(tree, prefix=""):
        out = {}
        for key, value in tree.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    with_rr, without = flat(compose_recipe(["recipe=demo_lm"])), flat(compose_recipe(["recipe=demo_lm_norr"]))
    changed = {key for key in with_rr.keys() | without.keys() if with_rr.get(key) != without.get(key)}
    assert changed == {"recipe_name", "run_dir", "solver.rr.enabled"}
    assert with_rr["solver.rr.enabled"] is True and without["solver.rr.enabled"] is False


def test_cpu_bf16_autocast_trains_close_to_float32(tmp_path, tiny_manifest):
    """``solver.cpu_bf16``: the forward runs in bf16 on CPU, weights and checkpoints stay float32, and the losses
    follow the float32 run's (same seed, same batches) to within bf16 rounding."""
    seen: list[torch.dtype] = []
    original = torch.nn.functional.linear

    def spy(x, weight, bias=None):
        out = original(x, weight, bias)
        seen.append(out.dtype)
        return out

    run(tiny_overrides(tmp_path / "fp32", tiny_manifest, 8))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.functional, "linear", spy)
        out = run(tiny_overrides(tmp_path / "bf16", tiny_manifest, 8, "solver.cpu_bf16=true"))
    assert torch.bfloat16 in seen  # the forward's matmuls ran in bf16
    reference, low = train_losses(tmp_path / "fp32"), train_losses(tmp_path / "bf16")
    assert sorted(low) == sorted(reference) == list(range(1, 9))
    assert all(abs(reference[s] - low[s]) < 0.05 * reference[s] for s in reference), (reference, low)
    assert reference != low  # really another precision
    model = TextToAudio.from_pretrained(out, dtype="float32")
    assert {p.dtype for p in model.backend.parameters()} == {torch.float32}

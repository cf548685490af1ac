"""``tokenlm generate`` flags the other CLI tests leave out: --prompt-audio, --device, --threads, --scheduler.

Each flag is checked by value: the file the command writes equals the file the Python API writes for the same
arguments, and differs from the file written without the flag where the flag changes the audio.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tokenlm.api import TextToAudio
from tokenlm.audio import read_audio, write_audio
from tokenlm.cli import main

try:  # tests/ is on sys.path under pytest's default (prepend) import mode
    from conftest import make_tiny_backend
except ImportError:  # importlib import mode, or tests/ made a package
    from tests.conftest import make_tiny_backend

SR = 16000
PROMPT = "a steady tone at 300 hz"


@pytest.fixture(scope="module")
def lm_dir(spm_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random LM (16 kHz, 4 x 128 codes, 2 s window)."""
    return make_tiny_backend(spm_model_path).save_pretrained(tmp_path_factory.mktemp("lm") / "model")


@pytest.fixture(scope="module")
def ldm_dir(spm_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random latent-diffusion model."""
    try:
        from test_ldm import make_ldm
    except ImportError:
        from tests.test_ldm import make_ldm

    return TextToAudio(make_ldm(spm_model_path)).save_pretrained(tmp_path_factory.mktemp("ldm") / "model")


def _cli(model: Path, out: Path, *flags: str) -> torch.Tensor:
    """Run ``tokenlm generate`` and return the written audio ``[C, N]``."""
    assert main(["generate", PROMPT, "--model", str(model), "--duration", "0.6", "--seed", "0", "--quiet",
                 "--out", str(out), *flags]) == 0
    wav, rate = read_audio(out)
    assert rate == SR
    return wav


def _api(model: TextToAudio, out: Path, **kwargs) -> torch.Tensor:
    """What the Python API writes for the same generation ``[C, N]``."""
    model.generate(PROMPT, 0.6, seed=0, **kwargs).save(out)
    return read_audio(out)[0]


def test_prompt_audio_continues_the_given_file(lm_dir, tmp_path):
    t = torch.arange(int(0.3 * SR)) / SR
    prompt = write_audio(tmp_path / "prompt.wav", (0.3 * torch.sin(2 * math.pi * 440 * t))[None], SR)
    continued = _cli(lm_dir, tmp_path / "cli.wav", "--prompt-audio", str(prompt))
    model = TextToAudio.from_pretrained(lm_dir)
    assert torch.equal(continued, _api(model, tmp_path / "api.wav", prompt_audio=str(prompt)))
    assert not torch.equal(continued, _cli(lm_dir, tmp_path / "plain.wav"))
    # the output starts with the prompt's codes (15 frames at 50 Hz), then continues
    codes = model.generate(PROMPT, 0.6, seed=0, prompt_audio=str(prompt), return_codes=True).codes
    prompt_codes = model.backend.codec.encode(read_audio(prompt)[0][None])
    assert prompt_codes.shape[-1] == 15 and torch.equal(codes[..., :15], prompt_codes)
    assert main(["generate", PROMPT, "--model", str(lm_dir), "--quiet", "--out", str(tmp_path / "x.wav"),
                 "--prompt-audio", str(tmp_path / "missing.wav")]) == 2


def test_device_cpu_is_the_default_output(lm_dir, tmp_path):
    on_cpu = _cli(lm_dir, tmp_path / "cpu.wav", "--device", "cpu")
    assert torch.equal(on_cpu, _cli(lm_dir, tmp_path / "default.wav"))
    assert torch.equal(on_cpu, _api(TextToAudio.from_pretrained(lm_dir, device="cpu"), tmp_path / "api.wav"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_cuda_generates_on_the_gpu(lm_dir, tmp_path):
    on_gpu = _cli(lm_dir, tmp_path / "gpu.wav", "--device", "cuda", "--temperature", "0")
    model = TextToAudio.from_pretrained(lm_dir, device="cuda")
    assert next(model.backend.lm.parameters()).is_cuda
    assert torch.equal(on_gpu, _api(model, tmp_path / "api.wav", temperature=0))


def test_threads_sets_torch_threads_and_keeps_the_output(lm_dir, tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        plain = _cli(lm_dir, tmp_path / "plain.wav")
        torch.set_num_threads(3)  # (nothing runs at 3: on a busy machine several threads only slow tiny models)
        flagged = _cli(lm_dir, tmp_path / "one.wav", "--threads", "1")
        assert torch.get_num_threads() == 1  # the flag set it before generating
    finally:
        torch.set_num_threads(before)
    assert torch.equal(flagged, plain)


def test_scheduler_picks_the_diffusion_sampler(ldm_dir, lm_dir, tmp_path, capsys):
    model = TextToAudio.from_pretrained(ldm_dir)
    dpmpp = _cli(ldm_dir, tmp_path / "dpmpp.wav", "--scheduler", "dpmpp", "--steps", "3")
    assert torch.equal(dpmpp, _api(model, tmp_path / "api_dpmpp.wav", scheduler="dpmpp", steps=3))
    ddim = _cli(ldm_dir, tmp_path / "ddim.wav", "--scheduler", "ddim", "--steps", "3")
    assert torch.equal(ddim, _api(model, tmp_path / "api_ddim.wav", scheduler="ddim", steps=3))
    assert torch.equal(ddim, _cli(ldm_dir, tmp_path / "default.wav", "--steps", "3"))  # ddim is the default
    assert not torch.equal(dpmpp, ddim)
    capsys.readouterr()
    assert main(["generate", PROMPT, "--model", str(lm_dir), "--quiet", "--out", str(tmp_path / "x.wav"),
                 "--scheduler", "dpmpp"]) == 2
    assert "do not apply to the 'lm' backend" in capsys.readouterr().err

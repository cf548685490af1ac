"""The README's "Bring your own weights" commands, run as written on tiny models of each source.

Every ``path/to/...`` of the README block is replaced by a tiny model of that kind built here (a transformers
MusicGen folder, audiocraft releases with and without their codec, an encodec-package checkpoint, a diffusers
Stable Audio folder) or by an output path; durations are shortened to what the tiny models hold.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import soundfile as sf
import torch
import yaml
from test_audiocraft_convert import write_checkpoint, xp_cfg
from test_diffusers_pipelines import build_stable_audio
from test_encodec_checkpoints import NAME_24, VARIANT_24, seanet_state
from test_encodec_checkpoints import xp_cfg as encodec_xp_cfg
from test_musicgen_hf import save_tiny_musicgen
from test_musicgen_melody_stereo import RATE, save_tiny_melody, save_tiny_stereo, scale_tune

from tokenlm import cli
from tokenlm.api import TextToAudio
from tokenlm.audio import read_audio
from tokenlm.codecs.encodec import EncodecCodec
from tokenlm.convert.encodec_audiocraft import audiocraft_encodec_config

README = Path(__file__).resolve().parents[1] / "README.md"
#: seconds the tiny models generate (the README asks for more): the tiny Stable Audio holds 1.28 s
SHORT_DURATION = {"stable-audio-open-1.0": "1.0"}


def weights_section() -> str:
    """The README from '## Bring your own weights' to the next section."""
    return README.read_text().split("## Bring your own weights", 1)[1].split("\n## ", 1)[0]


def weights_block() -> list[str]:
    """The command lines of the bash block under '## Bring your own weights'."""
    block = re.search(r"```bash\n(.*?)```", weights_section(), flags=re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, tiny_t5_dir: Path, tiny_encodec_dir: Path) -> dict[str, Path]:
    """Tiny inputs for every ``path/to/<name>`` the README reads."""
    root = tmp_path_factory.mktemp("weights")
    save_tiny_musicgen(root / "musicgen-small", tiny_t5_dir)

    # an AudioGen-style release: its own audiocraft EnCodec saved in full (128 codes x 4 codebooks, 16 kHz)
    codec_cfg = encodec_xp_cfg(rvq__bins=128)
    codec = EncodecCodec.from_config(audiocraft_encodec_config(yaml.safe_dump(codec_cfg)), seed=3)
    audiogen = write_checkpoint(root / "audiogen-medium", cfg=xp_cfg("t5-large"))
    torch.save({"xp.cfg": yaml.safe_dump(codec_cfg), "best_state": seanet_state(codec.model), "exported": True},
               audiogen / "compression_state_dict.bin")

    write_checkpoint(root / "musicgen-medium", cfg=xp_cfg("t5-base"))  # names facebook/encodec_32khz
    torch.save(seanet_state(EncodecCodec.from_config(VARIANT_24, seed=0).model), root / NAME_24)
    build_stable_audio(tiny_t5_dir).save_pretrained(root / "stable-audio-open-1.0")
    save_tiny_melody(root / "musicgen-melody", tiny_t5_dir)
    save_tiny_stereo(root / "musicgen-stereo-small", tiny_t5_dir)
    sf.write(root / "tune.wav", scale_tune(0.5)[0].numpy(), RATE)
    return {
        "musicgen-small": root / "musicgen-small",
        "audiogen-medium": audiogen,
        "musicgen-medium": root / "musicgen-medium",
        "encodec_32khz": tiny_encodec_dir,
        NAME_24: root / NAME_24,
        "t5-large": tiny_t5_dir,
        "t5-base": tiny_t5_dir,
        "stable-audio-open-1.0": root / "stable-audio-open-1.0",
        "musicgen-melody": root / "musicgen-melody",
        "musicgen-stereo-small": root / "musicgen-stereo-small",
        "tune.wav": root / "tune.wav",
    }


def test_readme_weights_commands(sources: dict[str, Path], tmp_path: Path) -> None:
    lines = weights_block()
    assert [shlex.split(line)[1] for line in lines] == ["convert"] * 4 + ["generate"] * 4
    outputs = tmp_path / "out"
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "tokenlm"
        model = argv[argv.index("--model") + 1].removeprefix("path/to/") if "--model" in argv else None
        for i, arg in enumerate(argv):
            if argv[i - 1] == "--duration":
                argv[i] = SHORT_DURATION.get(model, "0.5")
            elif arg.startswith("path/to/"):
                name = arg.removeprefix("path/to/")
                argv[i] = str(sources.get(name, outputs / name))
            elif argv[i - 1] == "--out":
                argv[i] = str(outputs / arg)
        assert cli.main(argv[1:]) == 0, line

    for name in ("tokenlm-musicgen-small", "tokenlm-audiogen", "tokenlm-musicgen-medium"):
        model = TextToAudio.from_pretrained(outputs / name)
        assert model.backend.name == "lm" and model.sample_rate == 16000
    assert EncodecCodec.from_pretrained(outputs / "encodec-24khz").sample_rate == 24000
    pop, rate = read_audio(outputs / "pop.wav")
    assert rate == 16000 and pop.shape == (1, 8000)
    rain, rate = read_audio(outputs / "rain.wav")
    assert rate == 100 and rain.shape == (2, 100)  # the tiny Stable Audio: stereo at a toy 100 Hz
    flute, rate = read_audio(outputs / "flute.wav")
    assert rate == RATE and flute.shape == (1, 8000)
    pads, rate = read_audio(outputs / "pads.wav")
    assert rate == RATE and pads.shape == (2, 8000)  # stereo MusicGen: two channels


def test_readme_weights_python_example(sources: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """The Python block of the section, with the tiny models for its ``path/to/...`` and half-second durations."""
    block = re.search(r"```python\n(.*?)```", weights_section(), flags=re.S).group(1)
    block = re.sub(r"path/to/([\w.-]+)", lambda m: str(sources[m.group(1)]), block)
    block = re.sub(r"duration=[\d.]+", "duration=0.5", block)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md weights python block", "exec"), {})
    for name, channels in (("melody_0.wav", 1), ("melody_1.wav", 1), ("stereo.wav", 2)):
        wav, rate = read_audio(tmp_path / name)
        assert rate == RATE and wav.shape == (channels, 8000)
    assert not torch.equal(read_audio(tmp_path / "melody_0.wav")[0], read_audio(tmp_path / "melody_1.wav")[0])

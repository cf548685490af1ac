"""The user API and checkpoint folders: generate, save/load round trips, long audio, prompts, bad input."""

import json

import pytest
import torch

from tokenlm import Audio, TextToAudio
from tokenlm.audio import read_audio, write_audio
from tokenlm.common.checkpoint import CheckpointError


@pytest.fixture()
def model(tiny_backend):
    return TextToAudio(tiny_backend)


def test_generate_shapes_values_and_codes(model):
    audio = model.generate(["a dog barks twice", {"description": "soft jazz piano"}], 1.0, seed=0, return_codes=True)
    assert isinstance(audio, Audio)
    assert audio.wav.shape == (2, 1, 16000) and audio.wav.dtype == torch.float32
    assert audio.sample_rate == 16000 and audio.duration == 1.0
    assert audio.codes.shape == (2, 4, 50) and audio.codes.max() < 128 and audio.codes.min() >= 0
    assert torch.isfinite(audio.wav).all() and audio.wav.abs().max() > 0
    # the waveform is the codec's decoding of the returned codes
    torch.testing.assert_close(audio.wav, model.backend.decode(audio.codes)[..., :16000])
    assert not torch.equal(audio.codes[0], audio.codes[1])  # different prompts, different outputs


def test_seed_reproducibility(model):
    a = model.generate("a dog barks twice", 0.5, seed=3, return_codes=True)
    b = model.generate("a dog barks twice", 0.5, seed=3, return_codes=True)
    c = model.generate("a dog barks twice", 0.5, seed=4, return_codes=True)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.wav, b.wav)
    assert not torch.equal(a.codes, c.codes)


def test_checkpoint_round_trip(model, tmp_path):
    before = model.generate(["rain on a roof", "a bell rings"], 0.6, seed=1, return_codes=True)
    model.save_pretrained(tmp_path / "ckpt")
    files = sorted(p.relative_to(tmp_path / "ckpt").as_posix() for p in (tmp_path / "ckpt").rglob("*") if p.is_file())
    assert "config.json" in files and "model.safetensors" in files and "codec/model.safetensors" in files
    assert "conditioners/description/spm.model" in files
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["format"] == "tokenlm" and config["backend"] == "lm" and config["pattern"]["kind"] == "delay"
    loaded = TextToAudio.from_pretrained(tmp_path / "ckpt", dtype="float32")  # exact: the dtype it was built in
    after = loaded.generate(["rain on a roof", "a bell rings"], 0.6, seed=1, return_codes=True)
    assert torch.equal(before.codes, after.codes)
    torch.testing.assert_close(before.wav, after.wav)
    for name, tensor in model.backend.state_dict().items():
        assert torch.equal(tensor, loaded.backend.state_dict()[name]), name


def test_long_audio_by_sliding_window(model):
    # the window is 2 s; 4.5 s needs several windows, each continuing the last (window - stride) seconds
    audio = model.generate("a train passes", 4.5, seed=0, extend_stride=1.0, return_codes=True)
    assert audio.wav.shape == (1, 1, 72000)
    assert audio.codes.shape == (1, 4, 225)
    assert torch.isfinite(audio.wav).all()
    # the waveform is the decoding of all 225 frames, and the first window is what a plain 2 s generation with
    # the same seed samples (the same draws, in the same order)
    torch.testing.assert_close(audio.wav, model.backend.decode(audio.codes)[..., :72000])
    first = model.generate("a train passes", 2.0, seed=0, return_codes=True)
    assert torch.equal(audio.codes[..., :100], first.codes)
    assert not torch.equal(audio.codes[..., 100:200], first.codes)  # later windows are new audio, not a loop


def test_long_greedy_generation_continues_each_window(model):
    # greedy: the first window of a long generation equals a plain generation of one window
    long = model.generate("a train passes", 3.0, temperature=0, return_codes=True, extend_stride=1.0)
    short = model.generate("a train passes", 2.0, temperature=0, return_codes=True)
    assert torch.equal(long.codes[..., :100], short.codes)
    # and the second window starts from the last second of the first as its prompt
    prompt = short.codes[..., 50:]
    cont = model.backend.generate_tokens(
        [{"description": "a train passes"}], 2.0, model_params(temperature=0), prompt=prompt
    )
    assert torch.equal(long.codes[..., 100:150], cont[..., 50:100])


def model_params(**kwargs):
    from tokenlm.lm.sampling import SamplingParams

    return SamplingParams(**kwargs)


def test_audio_prompt_continuation(model, tmp_path):
    first = model.generate("a dog barks", 1.0, seed=0, return_codes=True)
    path = tmp_path / "prompt.wav"
    write_audio(path, first.wav[0], 16000, normalize="none", subtype="FLOAT")
    cont = model.generate("a dog barks", 1.5, seed=1, prompt_audio=path, return_codes=True)
    prompt_codes = model.backend.encode_audio(read_audio(path)[0][None])
    assert cont.codes.shape == (1, 4, 75)
    assert torch.equal(cont.codes[..., : prompt_codes.shape[-1]], prompt_codes)
    # a tensor prompt at another sample rate is resampled to the codec's
    stereo_44k = torch.randn(2, 44100) * 0.1
    out = model.generate(["a", "b"], 1.5, prompt_audio=stereo_44k, prompt_sample_rate=44100, seed=0)
    assert out.wav.shape == (2, 1, 24000)


def test_audio_save(model, tmp_path):
    audio = model.generate(["a dog barks", "rain"], 0.5, seed=0)
    paths = audio.save(tmp_path / "out.wav")
    assert [p.name for p in paths] == ["out_0.wav", "out_1.wav"]
    wav, rate = read_audio(paths[1])
    assert rate == 16000 and wav.shape == (1, 8000)
    single = model.generate("a dog barks", 0.5, seed=0).save(tmp_path / "one.wav")
    assert [p.name for p in single] == ["one.wav"]


@pytest.mark.parametrize(
    "prompts,duration,kwargs,message",
    [
        ("", 1.0, {}, "prompt 0 is an empty string"),
        ([], 1.0, {}, "non-empty list"),
        ([3], 1.0, {}, "prompt 0 must be a string or an attribute dict, got int 3"),
        ({"description": 5}, 1.0, {}, "attribute 'description' takes str values"),
        ({"genre": "jazz"}, 1.0, {}, r"unknown attribute\(s\) \['genre'\]; this model knows \['description'\]"),
        ("ok", 0, {}, "duration must be > 0 seconds, got 0"),
        ("ok", -1.5, {}, "duration must be > 0 seconds"),
        ("ok", float("inf"), {}, "duration must be a finite number"),
        ("ok", "5", {}, "duration must be a finite number"),
        ("ok", 1e9, {}, "more than the .* GiB available"),
        ("ok", 1.0, {"top_k": -1}, "top_k must be an int >= 0"),
        ("ok", 1.0, {"top_p": 1.2}, r"top_p must be a number in \[0, 1\]"),
        ("ok", 1.0, {"temperature": -1}, "temperature must be a number >= 0"),
        ("ok", 1.0, {"cfg_coef": -2}, "cfg_coef must be a number >= 0"),
        ("ok", 1.0, {"extend_stride": 5.0}, r"extend_stride must be in \(0, 2.0\]"),
    ],
)
def test_bad_input_is_a_clear_error(model, prompts, duration, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model.generate(prompts, duration, **kwargs)


def test_cfg_on_a_model_trained_without_cfg_is_refused(model):
    model.backend.cfg_dropout = 0.0
    with pytest.raises(ValueError, match="trained without \\(cfg_dropout=0\\); use cfg_coef=1"):
        model.generate("a dog", 0.5, cfg_coef=3.0)
    assert model.generate("a dog", 0.2, cfg_coef=1.0).wav.shape == (1, 1, 3200)


def test_prompt_longer_than_duration_is_refused(model):
    with pytest.raises(ValueError, match="must be shorter than the requested duration"):
        model.generate("a", 0.5, prompt_audio=torch.zeros(1, 16000), prompt_sample_rate=16000)


def test_broken_checkpoints(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TextToAudio.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="has no config.json"):
        TextToAudio.from_pretrained(tmp_path / "empty")
    ckpt = model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((ckpt / "config.json").read_text())

    (ckpt / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(CheckpointError, match="reads formats up to 1: upgrade tokenlm"):
        TextToAudio.from_pretrained(ckpt)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        TextToAudio.from_pretrained(ckpt)
    (ckpt / "config.json").write_text(json.dumps({**config, "backend": "gan"}))
    with pytest.raises(ValueError, match="unknown backend 'gan'; installed backends: diffusers, ldm, lm"):
        TextToAudio.from_pretrained(ckpt)
    wider = {**config, "lm": {**config["lm"], "dim": 64}}
    (ckpt / "config.json").write_text(json.dumps(wider))
    with pytest.raises(ValueError, match="conditioner output dims \\[32\\] differ from the LM dim 64"):
        TextToAudio.from_pretrained(ckpt)
    deeper = {**config, "lm": {**config["lm"], "num_layers": 3}}
    (ckpt / "config.json").write_text(json.dumps(deeper))
    with pytest.raises(CheckpointError, match="does not match the architecture.*missing tensors"):
        TextToAudio.from_pretrained(ckpt)
    (ckpt / "config.json").write_text(json.dumps(config))
    (ckpt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        TextToAudio.from_pretrained(ckpt)
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors' is missing"):
        TextToAudio.from_pretrained(ckpt)


def test_foreign_config_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="not a tokenlm checkpoint .*model_type 'bert'"):
        TextToAudio.from_pretrained(tmp_path)

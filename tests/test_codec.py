"""Tests for the EnCodec codec wrapper, against transformers' EncodecModel as the reference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tokenlm.codecs import Codec, EncodecCodec, build_codec, load_codec, tiny_encodec_config

HOP = 320


@pytest.fixture(scope="module")
def codec() -> EncodecCodec:
    return EncodecCodec.from_config(tiny_encodec_config(), seed=0)


@pytest.fixture(scope="module")
def wav() -> torch.Tensor:
    """``[2, 1, 16000]``: a tone and noise, 1 s at 16 kHz."""
    t = torch.arange(16000) / 16000
    tone = 0.5 * torch.sin(2 * math.pi * 440 * t)
    noise = 0.3 * torch.randn(16000, generator=torch.Generator().manual_seed(1))
    return torch.stack([tone, noise])[:, None]


def test_properties(codec: EncodecCodec) -> None:
    assert isinstance(codec, Codec) and codec.kind == "encodec"
    assert (codec.sample_rate, codec.channels, codec.frame_rate) == (16000, 1, 50.0)
    assert (codec.num_codebooks, codec.cardinality, codec.latent_dim, codec.hop_length) == (4, 128, 32, HOP)
    assert codec.config() == {"kind": "encodec", "bandwidth": 1.4}
    assert codec.num_frames(16000) == 50 and codec.num_frames(16001) == 51
    assert not codec.model.training


@pytest.mark.parametrize("num_samples", [1, 319, 320, 5000, 16000])
def test_encode_decode_shapes(codec: EncodecCodec, num_samples: int) -> None:
    x = 0.3 * torch.randn(3, 1, num_samples, generator=torch.Generator().manual_seed(num_samples))
    codes = codec.encode(x)
    frames = math.ceil(num_samples / HOP)
    assert codes.shape == (3, 4, frames) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() < codec.cardinality
    audio = codec.decode(codes)
    assert audio.shape == (3, 1, frames * HOP) and audio.dtype == torch.float32
    assert torch.isfinite(audio).all()


def test_codebooks_are_initialised(codec: EncodecCodec, wav: torch.Tensor) -> None:
    # EncodecModel zero-initialises its codebooks, which would make every code 0
    for layer in codec.model.quantizer.layers:
        assert layer.codebook.embed.abs().sum() > 0
    codes = codec.encode(wav)
    assert all(codes[1, k].unique().numel() >= 5 for k in range(codec.num_codebooks))
    # each residual stage shrinks the quantisation error
    latent = codec.encode_latent(wav)  # [B, D, T]
    errors = []
    for k in range(codec.num_codebooks + 1):
        quantized = codec.model.quantizer.decode(codes[:, :k].transpose(0, 1)) if k else torch.zeros(())
        errors.append(((latent - quantized).norm() / latent.norm()).item())
    assert errors[0] == 1.0 and errors[-1] < 0.1
    assert all(a > b for a, b in zip(errors[:-1], errors[1:], strict=True))


def test_reference_parity(codec: EncodecCodec, wav: torch.Tensor) -> None:
    model = codec.model
    with torch.no_grad():
        ref = model.encode(wav, bandwidth=1.4, return_dict=True)
        ref_audio = model.decode(ref.audio_codes, ref.audio_scales, return_dict=True).audio_values
        manual = model.quantizer.encode(model.encoder(wav), 1.4).transpose(0, 1)  # [B, K, T]
    codes = codec.encode(wav)
    assert torch.equal(codes, ref.audio_codes[0])
    assert torch.equal(codes, manual)
    assert torch.equal(codec.decode(codes), ref_audio)


def test_deterministic_and_consistent(codec: EncodecCodec, wav: torch.Tensor) -> None:
    codes = codec.encode(wav)
    assert torch.equal(codec.encode(wav), codes)
    audio = codec.decode(codes)
    assert torch.equal(codec.decode(codes), audio)
    recoded = codec.encode(audio)
    assert recoded.shape == codes.shape
    assert torch.equal(codec.encode(codec.decode(codes)), recoded)
    # a batch encodes as its items do
    assert torch.equal(codec.encode(wav[1:]), codes[1:])
    assert torch.allclose(codec.decode(codes[1:]), audio[1:], atol=1e-5)
    # decoding codes is decoding their quantised latent
    quantized = codec.model.quantizer.decode(codes.transpose(0, 1))  # [B, D, T]
    assert torch.allclose(codec.decode_latent(quantized), audio, atol=1e-6)


def test_latent_path(codec: EncodecCodec, wav: torch.Tensor) -> None:
    latent = codec.encode_latent(wav)
    assert latent.shape == (2, 32, 50)
    assert not latent.requires_grad
    with torch.no_grad():
        ref = codec.model.decoder(codec.model.encoder(wav))
    out = codec.decode_latent(latent)
    assert out.shape == (2, 1, 16000)
    assert torch.equal(out, ref)


def test_save_and_load_round_trip(codec: EncodecCodec, wav: torch.Tensor, tmp_path: Path) -> None:
    codec.save_pretrained(tmp_path / "codec")
    assert (tmp_path / "codec" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "codec" / "config.json").read_text())["model_type"] == "encodec"
    loaded = EncodecCodec.from_pretrained(tmp_path / "codec")
    codes = codec.encode(wav)
    assert torch.equal(loaded.encode(wav), codes)
    assert torch.equal(loaded.decode(codes), codec.decode(codes))
    via_config = load_codec(tmp_path / "codec", codec.config())
    assert isinstance(via_config, EncodecCodec) and torch.equal(via_config.encode(wav), codes)


def test_seed_is_reproducible_and_local(wav: torch.Tensor) -> None:
    state = torch.random.get_rng_state()
    a = EncodecCodec.from_config(tiny_encodec_config(), seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = build_codec({"kind": "encodec"}, seed=3)
    c = EncodecCodec.from_config(tiny_encodec_config(), seed=4)
    assert torch.equal(a.encode(wav), b.encode(wav))
    assert not torch.equal(a.encode(wav), c.encode(wav))


def test_bandwidth_selects_codebooks(wav: torch.Tensor) -> None:
    config = tiny_encodec_config()
    config["target_bandwidths"] = [0.7, 1.4]
    low = EncodecCodec.from_config(config, seed=0)  # default: the first bandwidth
    assert low.bandwidth == 0.7 and low.num_codebooks == 2
    high = EncodecCodec(low.model, bandwidth=1.4)
    assert high.num_codebooks == 4
    assert torch.equal(high.encode(wav)[:, :2], low.encode(wav))  # residual quantisation is nested
    with pytest.raises(ValueError, match=r"bandwidth 3.0 .*\[0.7, 1.4\]"):
        EncodecCodec(low.model, bandwidth=3.0)


def test_musicgen_32khz_layout() -> None:
    # the MusicGen codec's rate and codebooks (32 kHz, hop 640, 2048 entries, 2.2 kbps), at a tiny width
    config = tiny_encodec_config(sample_rate=32000, upsampling_ratios=(8, 5, 4, 4), codebook_size=2048)
    config["target_bandwidths"] = [2.2]
    codec = EncodecCodec.from_config(config, seed=0)
    assert (codec.num_codebooks, codec.frame_rate, codec.cardinality) == (4, 50.0, 2048)
    codes = codec.encode(torch.randn(1, 1, 32000) * 0.1)
    assert codes.shape == (1, 4, 50) and codes.max() < 2048


def test_stereo_codec() -> None:
    codec = EncodecCodec.from_config(tiny_encodec_config(channels=2), seed=0)
    assert codec.channels == 2
    codes = codec.encode(0.1 * torch.randn(1, 2, 1000))
    assert codec.decode(codes).shape == (1, 2, 4 * HOP)
    with pytest.raises(ValueError, match="1 channels but the codec takes 2"):
        codec.encode(torch.zeros(1, 1, 1000))


def test_input_errors(codec: EncodecCodec) -> None:
    with pytest.raises(ValueError, match="2 channels but the codec takes 1"):
        codec.encode(torch.zeros(1, 2, 1000))
    with pytest.raises(ValueError, match=r"shape \(1, 1000\)"):
        codec.encode(torch.zeros(1, 1000))
    with pytest.raises(ValueError, match="empty"):
        codec.encode(torch.zeros(1, 1, 0))
    with pytest.raises(ValueError, match=r"K=4.*shape \(1, 3, 5\)"):
        codec.decode(torch.zeros(1, 3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 128\).*\[128, 128\]"):
        codec.decode(torch.full((1, 4, 5), 128))
    with pytest.raises(ValueError, match=r"\[-1, -1\]"):
        codec.decode(torch.full((1, 4, 5), -1))
    with pytest.raises(ValueError, match="torch.float32"):
        codec.decode(torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match=r"D=32.*shape \(1, 16, 5\)"):
        codec.decode_latent(torch.zeros(1, 16, 5))


def test_chunked_models_load_as_frames() -> None:
    config = tiny_encodec_config()
    config.update(chunk_length_s=1.0, overlap=0.01, normalize=True)
    codec = EncodecCodec.from_config(config)
    assert codec.framed
    with pytest.raises(ValueError, match="per-chunk loudness scales are not part of"):
        codec.encode(torch.zeros(1, 1, 1000))

def test_loading_errors(codec: EncodecCodec, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        EncodecCodec.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json.*empty"):
        EncodecCodec.from_pretrained(tmp_path / "empty")
    (tmp_path / "t5").mkdir()
    (tmp_path / "t5" / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ValueError, match="'t5' model, not an 'encodec'"):
        EncodecCodec.from_pretrained(tmp_path / "t5")
    with pytest.raises(ValueError, match=r"'dac'.*\['encodec', 'encodec_stereo'\]"):
        load_codec(tmp_path / "t5", {"kind": "dac"})
    with pytest.raises(ValueError, match=r"None.*\['encodec', 'encodec_stereo'\]"):
        build_codec({})


def test_bf16_decoder_decodes_close_to_float32_and_saves_float32(wav: torch.Tensor, tmp_path: Path) -> None:
    codec = EncodecCodec.from_config(tiny_encodec_config(), seed=0)  # its own: the dtype is changed here
    codes = codec.encode(wav)
    reference = codec.decode(codes)
    assert codec.set_decoder_dtype(torch.bfloat16) and codec.decoder_dtype == torch.bfloat16
    low = codec.decode(codes)
    assert low.dtype == torch.float32 and low.shape == reference.shape
    assert not torch.equal(low, reference)  # it did run in bf16
    error = 10 * torch.log10((reference - low).pow(2).sum() / reference.pow(2).sum())
    assert error < -25, error  # dB of error energy against the float32 waveform
    assert torch.equal(codec.encode(wav), codes)  # the encoder and the quantiser are untouched
    codec.save_pretrained(tmp_path / "codec")
    assert codec.decoder_dtype == torch.bfloat16  # restored after saving...
    loaded = EncodecCodec.from_pretrained(tmp_path / "codec")  # ...which wrote float32 weights (bf16-rounded)
    assert loaded.decoder_dtype == torch.float32
    for name, tensor in codec.model.decoder.state_dict().items():
        assert torch.equal(loaded.model.decoder.state_dict()[name], tensor.float()), name
    codec.set_decoder_dtype(torch.float32)
    assert torch.equal(codec.decode(codes), loaded.decode(codes))
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        codec.set_decoder_dtype(torch.float16)


def test_chunked_models_keep_a_float32_decoder() -> None:
    config = tiny_encodec_config()
    config.update(chunk_length_s=1.0, overlap=0.01, normalize=True)
    codec = EncodecCodec.from_config(config)
    assert not codec.set_decoder_dtype(torch.bfloat16) and codec.decoder_dtype == torch.float32

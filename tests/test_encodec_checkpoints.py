"""EnCodec checkpoints of the encodec package / audiocraft -> EncodecCodec, and chunked (framed) codecs.

The reference libraries are not installed here (their parity tests live in tests/compat): SEANet-style state dicts
are made from tiny transformers models by renaming their tensors module by module (``seanet_state`` below), the
inverse of what the converter does, written independently of it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from transformers.models.encodec.modeling_encodec import EncodecConv1d, EncodecConvTranspose1d, EncodecModel

from tokenlm.codecs import EncodecCodec, tiny_encodec_config
from tokenlm.convert.encodec_audiocraft import audiocraft_encodec_config, encodec_from_audiocraft
from tokenlm.convert.encodec_checkpoints import (
    convert_encodec_checkpoint,
    convert_encodec_package_checkpoint,
    load_encodec_checkpoint,
)
from tokenlm.convert.encodec_package import load_encodec_package_checkpoint
from tokenlm.convert.encodec_seanet import infer_seanet_architecture, seanet_to_transformers

NAME_24 = "encodec_24khz-d7cc33bc.th"
NAME_48 = "encodec_48khz-7e698e3e.th"
#: the package's fixed choices per variant, at a tiny width (hop 320 as released: 75 / 150 frames per second)
SIZES: dict[str, Any] = {
    "num_filters": 4,
    "hidden_size": 8,
    "upsampling_ratios": [8, 5, 4, 2],
    "num_lstm_layers": 1,
    "codebook_size": 1024,
    "pad_mode": "reflect",
}
VARIANT_24 = {
    **SIZES,
    "sampling_rate": 24000,
    "audio_channels": 1,
    "use_causal_conv": True,
    "norm_type": "weight_norm",
    "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0],
}
VARIANT_48 = {
    **SIZES,
    "sampling_rate": 48000,
    "audio_channels": 2,
    "use_causal_conv": False,
    "norm_type": "time_group_norm",
    "normalize": True,
    "chunk_length_s": 1.0,
    "overlap": 0.01,
    "target_bandwidths": [3.0, 6.0, 12.0, 24.0],
}


class Payload:
    """Not a tensor: torch.save pickles it by reference, which weights_only loading refuses."""


def seanet_state(model: EncodecModel) -> dict[str, torch.Tensor]:
    """``model``'s tensors under the encodec package / audiocraft names (old-style weight norm)."""
    kinds = {
        name: type(m) for name, m in model.named_modules() if isinstance(m, (EncodecConv1d, EncodecConvTranspose1d))
    }
    out = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("quantizer."):  # quantizer.layers.q.codebook.x -> quantizer.vq.layers.q._codebook.x
            _, _, q, _, buffer = name.split(".")
            out[f"quantizer.vq.layers.{q}._codebook.{buffer}"] = tensor.clone()
            continue
        module = max((m for m in kinds if name.startswith(f"{m}.")), key=len, default=None)
        if module is None:  # an LSTM tensor
            out[name.replace(".layers.", ".model.", 1)] = tensor.clone()
            continue
        wrapper = "convtr" if kinds[module] is EncodecConvTranspose1d else "conv"
        head, rest = module.replace(".layers.", ".model.", 1), name[len(module) + 1 :]
        if rest.startswith("norm."):  # time group norm
            out[f"{head}.{wrapper}.{rest}"] = tensor.clone()
        elif rest.startswith("conv.parametrizations.weight.original"):  # original0 / 1 -> weight_g / weight_v
            out[f"{head}.{wrapper}.{wrapper}.weight_{'gv'[int(rest[-1])]}"] = tensor.clone()
        else:  # conv.weight / conv.bias
            out[f"{head}.{wrapper}.{wrapper}.{rest.removeprefix('conv.')}"] = tensor.clone()
    return out


def tiny_codec(variant: dict[str, Any], seed: int = 0) -> EncodecCodec:
    """A tiny random codec with the variant's choices; its first bandwidth."""
    return EncodecCodec.from_config(variant, seed=seed)


@pytest.fixture(scope="module")
def codec_24() -> EncodecCodec:
    return tiny_codec(VARIANT_24)


@pytest.fixture(scope="module")
def file_24(codec_24: EncodecCodec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pkg24") / NAME_24
    torch.save(seanet_state(codec_24.model), path)
    return path


@pytest.fixture(scope="module")
def codec_48() -> EncodecCodec:
    return tiny_codec(VARIANT_48, seed=1)


def noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return 0.2 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ encodec package


def test_seanet_names_look_like_the_package(file_24: Path) -> None:
    state = torch.load(file_24, weights_only=True)
    assert "encoder.model.0.conv.conv.weight_g" in state and "encoder.model.0.conv.conv.weight_v" in state
    assert "decoder.model.2.convtr.convtr.weight_v" not in state  # ELU at 2
    assert "decoder.model.3.convtr.convtr.weight_v" in state
    assert "encoder.model.1.block.1.conv.conv.weight_g" in state and "encoder.model.1.shortcut.conv.conv.bias" in state
    assert "quantizer.vq.layers.31._codebook.embed" in state
    arch = infer_seanet_architecture(state)
    assert arch["upsampling_ratios"] == [8, 5, 4, 2] and arch["num_quantizers"] == 32
    assert (arch["num_filters"], arch["hidden_size"], arch["num_lstm_layers"]) == (4, 8, 1)


@pytest.mark.parametrize("bandwidth", [1.5, 6.0, 24.0])
def test_package_24khz_round_trip(codec_24: EncodecCodec, file_24: Path, bandwidth: float) -> None:
    loaded = load_encodec_package_checkpoint(file_24, bandwidth=bandwidth)
    reference = EncodecCodec(codec_24.model, bandwidth)
    assert loaded.num_codebooks == reference.num_codebooks == {1.5: 2, 6.0: 8, 24.0: 32}[bandwidth]
    wav = noise(2, 1, 4000)
    codes = loaded.encode(wav)
    assert torch.equal(codes, reference.encode(wav))
    assert torch.equal(loaded.decode(codes), reference.decode(codes))
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name


def test_package_48khz_is_chunked(codec_48: EncodecCodec, tmp_path: Path) -> None:
    torch.save(seanet_state(codec_48.model), tmp_path / NAME_48)
    loaded = load_encodec_package_checkpoint(tmp_path / NAME_48, bandwidth=12.0)
    assert loaded.framed and loaded.num_codebooks == 8 and loaded.channels == 2
    reference = EncodecCodec(codec_48.model, 12.0)
    wav = noise(1, 2, 48000 + 9000)  # two chunks, the second short
    frames = loaded.encode_frames(wav)
    expected = reference.encode_frames(wav)
    assert len(frames) == 2 and frames[1][0].shape[-1] < frames[0][0].shape[-1]
    for (codes, scale), (ref_codes, ref_scale) in zip(frames, expected, strict=True):
        assert torch.equal(codes, ref_codes) and torch.equal(scale, ref_scale)
    assert torch.equal(loaded.decode_frames(frames), reference.decode_frames(expected))


def test_convert_folder_round_trip(codec_24: EncodecCodec, file_24: Path, tmp_path: Path) -> None:
    out = convert_encodec_package_checkpoint(file_24, tmp_path / "codec", bandwidth=3.0)
    assert out == tmp_path / "codec" and {p.name for p in out.iterdir()} == {"config.json", "model.safetensors"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "encodec" and config["use_causal_conv"] is True
    loaded = EncodecCodec.from_pretrained(out, bandwidth=3.0)
    wav = noise(1, 1, 3000, seed=3)
    reference = EncodecCodec(codec_24.model, 3.0)
    assert torch.equal(loaded.encode(wav), reference.encode(wav))
    with pytest.raises(FileExistsError, match="already exists"):
        convert_encodec_package_checkpoint(file_24, out)
    # the general entry point reads either library's files
    again = convert_encodec_checkpoint(file_24, tmp_path / "again")
    assert torch.equal(EncodecCodec.from_pretrained(again, bandwidth=3.0).encode(wav), reference.encode(wav))


def test_bad_files(file_24: Path, tmp_path: Path) -> None:
    truncated = tmp_path / NAME_24
    truncated.write_bytes(file_24.read_bytes()[:2000])
    with pytest.raises(ValueError, match="truncated"):
        load_encodec_package_checkpoint(truncated)
    torch.save({"encoder.model.0.conv.conv.weight_g": Payload()}, tmp_path / "encodec_24khz-object.th")
    with pytest.raises(ValueError, match="objects other than weights"):
        load_encodec_package_checkpoint(tmp_path / "encodec_24khz-object.th")
    torch.save([torch.zeros(2)], tmp_path / "encodec_24khz-list.th")
    with pytest.raises(ValueError, match="not a state dict: it holds a list"):
        load_encodec_package_checkpoint(tmp_path / "encodec_24khz-list.th")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encodec_package_checkpoint(tmp_path / "encodec_24khz-missing.th")
    (tmp_path / "model.th").write_bytes(file_24.read_bytes())
    for loader in (load_encodec_package_checkpoint, load_encodec_checkpoint):
        with pytest.raises(ValueError, match=r"variant of 'model.th'.*encodec_24khz-<hash>.th"):
            loader(tmp_path / "model.th")
    (tmp_path / NAME_48).write_bytes(file_24.read_bytes())
    with pytest.raises(ValueError, match=r"named as encodec_48khz.*audio_channels: name says 2, tensors say 1"):
        load_encodec_package_checkpoint(tmp_path / NAME_48)
    with pytest.raises(ValueError, match=r"bandwidth 2.0 is not one of .*\[1.5, 3.0, 6.0, 12.0, 24.0\]"):
        load_encodec_package_checkpoint(file_24, bandwidth=2.0)


def _saved(state: dict[str, torch.Tensor], folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    torch.save(state, folder / NAME_24)
    return folder / NAME_24


def test_missing_extra_and_misshapen_tensors(file_24: Path, tmp_path: Path) -> None:
    state = torch.load(file_24, weights_only=True)
    missing = {k: v for k, v in state.items() if k != "decoder.model.3.convtr.convtr.bias"}
    with pytest.raises(ValueError, match=r"missing \(transformers names\) decoder\.layers\.3\.conv\.bias"):
        load_encodec_package_checkpoint(_saved(missing, tmp_path / "missing"))
    extra = {**state, "decoder.model.3.convtr.extra": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected decoder\.model\.3\.convtr\.extra"):
        load_encodec_package_checkpoint(_saved(extra, tmp_path / "extra"))
    wrong = {**state, "decoder.model.0.conv.conv.bias": torch.zeros(5)}
    with pytest.raises(ValueError, match=r"'decoder\.model\.0\.conv\.conv\.bias' has shape \(5,\).*\(64,\)"):
        load_encodec_package_checkpoint(_saved(wrong, tmp_path / "wrong"))
    untrained = {**state, "quantizer.vq.layers.3._codebook.inited": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"never initialised.*layers\.3\._codebook\.inited"):
        load_encodec_package_checkpoint(_saved(untrained, tmp_path / "untrained"))
    fewer = {k: v for k, v in state.items() if not k.startswith("quantizer.vq.layers.31.")}
    with pytest.raises(ValueError, match="holds 31 codebooks, but a encodec_24khz model .* has 32"):
        load_encodec_package_checkpoint(_saved(fewer, tmp_path / "fewer"))


def test_training_buffers_are_derived(codec_24: EncodecCodec, file_24: Path) -> None:
    state = torch.load(file_24, weights_only=True)
    lean = {k: v for k, v in state.items() if not k.endswith(("cluster_size", "embed_avg", "inited"))}
    mapped = seanet_to_transformers(lean, codec_24.model.config)
    embed = mapped["quantizer.layers.0.codebook.embed"]
    assert torch.equal(mapped["quantizer.layers.0.codebook.embed_avg"], embed)
    assert mapped["quantizer.layers.0.codebook.inited"].item() == 1
    assert set(mapped) == set(codec_24.model.state_dict())


# ------------------------------------------------------------------------------------------------- audiocraft


def xp_cfg(**overrides: Any) -> dict[str, Any]:
    """A tiny audiocraft EnCodec config as its solver dumps it (interpolations unresolved)."""
    cfg: dict[str, Any] = {
        "sample_rate": 16000,
        "channels": 1,
        "compression_model": "encodec",
        "encodec": {
            "autoencoder": "seanet",
            "quantizer": "rvq",
            "sample_rate": "${sample_rate}",
            "channels": "${channels}",
            "causal": False,
            "renormalize": False,
        },  # fmt: skip
        "seanet": {
            "dimension": 8,
            "channels": "${channels}",
            "causal": "${encodec.causal}",
            "n_filters": 4,
            "n_residual_layers": 1,
            "ratios": [8, 5, 4, 2],
            "activation": "ELU",
            "activation_params": {"alpha": 1.0},
            "norm": "weight_norm",
            "norm_params": {},
            "kernel_size": 7,
            "residual_kernel_size": 3,
            "last_kernel_size": 7,
            "dilation_base": 2,
            "pad_mode": "constant",
            "true_skip": True,
            "compress": 2,
            "lstm": 2,
            "disable_norm_outer_blocks": 0,
            "decoder": {"trim_right_ratio": 1.0, "final_activation": None, "final_activation_params": None},
            "encoder": {},
        },  # fmt: skip
        "rvq": {
            "n_q": 4,
            "q_dropout": True,
            "bins": 64,
            "decay": 0.99,
            "kmeans_init": True,
            "kmeans_iters": 50,
            "threshold_ema_dead_code": 2,
            "orthogonal_reg_weight": 0.0,
            "orthogonal_reg_active_codes_only": False,
        },  # fmt: skip
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            cfg[section][name] = value
        else:
            cfg[section] = value
    return cfg


def test_audiocraft_xp_cfg_round_trip() -> None:
    cfg = xp_cfg()
    config = audiocraft_encodec_config(yaml.safe_dump(cfg))
    assert (config.sampling_rate, config.audio_channels, config.hidden_size, config.codebook_size) == (16000, 1, 8, 64)
    assert config.pad_mode == "constant" and not config.use_conv_shortcut and not config.use_causal_conv
    reference = EncodecCodec.from_config(config, seed=2)
    package = {"xp.cfg": yaml.safe_dump(cfg), "best_state": seanet_state(reference.model), "exported": True}
    wav = noise(2, 1, 5000, seed=4)
    for k in (1, 2, 4):
        codec = encodec_from_audiocraft(package, num_codebooks=k)
        assert codec.num_codebooks == k
        expected = EncodecCodec(reference.model, codec.bandwidth)
        assert torch.equal(codec.encode(wav), expected.encode(wav))
    assert encodec_from_audiocraft(package).num_codebooks == 4  # default: all, as audiocraft
    without_dropout = {**package, "xp.cfg": yaml.safe_dump(xp_cfg(rvq__q_dropout=False))}
    assert len(audiocraft_encodec_config(without_dropout["xp.cfg"]).target_bandwidths) == 1
    with pytest.raises(ValueError, match=r"no bandwidth of this EnCodec model gives 2 codebooks.*: 4\}"):
        encodec_from_audiocraft(without_dropout, num_codebooks=2)
    with pytest.raises(ValueError, match=r"missing .*quantizer\.layers\.3\.codebook\.embed"):
        encodec_from_audiocraft(
            {**package, "best_state": {k: v for k, v in package["best_state"].items() if "layers.3._" not in k}}
        )  # noqa: E501


def test_audiocraft_renormalize_is_one_scaled_frame() -> None:
    cfg = xp_cfg(encodec__renormalize=True, seanet__norm="time_group_norm", seanet__true_skip=False)
    config = audiocraft_encodec_config(yaml.safe_dump(cfg))
    assert config.normalize and config.chunk_length_s is None and config.use_conv_shortcut
    codec = EncodecCodec.from_config(config, seed=0)
    wav = noise(2, 1, 3000) * torch.tensor([1.0, 4.0])[:, None, None]  # two loudness levels
    (codes, scale), = codec.encode_frames(wav)  # fmt: skip
    assert codes.shape == (2, codec.num_codebooks, 10) and scale.shape == (2, 1)
    # audiocraft's renormalisation: scale = RMS of the mono mix + 1e-8, and the encoder sees wav / scale
    torch.testing.assert_close(scale, wav.mean(dim=1).pow(2).mean(dim=-1, keepdim=True).sqrt() + 1e-8)
    (louder, louder_scale), = codec.encode_frames(3.0 * wav)  # fmt: skip
    assert torch.equal(louder, codes)  # the codes do not depend on the level
    torch.testing.assert_close(louder_scale, 3.0 * scale)


def test_audiocraft_unsupported_options_are_listed() -> None:
    cfg = xp_cfg(
        seanet__disable_norm_outer_blocks=1,
        seanet__activation="SiLU",
        seanet__norm="spectral_norm",
        encodec__quantizer="no_quant",
        rvq__bins=100,
    )
    cfg["seanet"]["decoder"]["final_activation"] = "Tanh"
    cfg["seanet"]["decoder"]["n_filters"] = 8
    with pytest.raises(ValueError, match="cannot express") as info:
        encodec_from_audiocraft({"xp.cfg": yaml.safe_dump(cfg), "best_state": {}})
    message = str(info.value)
    for fragment in ("disable_norm_outer_blocks=1", "'SiLU'", "'spectral_norm'", "'no_quant'", "rvq.bins=100",
                     "final_activation='Tanh'", "n_filters (encoder 4, decoder 8)"):  # fmt: skip
        assert fragment in message, fragment
    with pytest.raises(ValueError, match=r"seanet\.encoder\.lstm=0"):
        audiocraft_encodec_config(yaml.safe_dump(xp_cfg(seanet__lstm=0)))
    with pytest.raises(ValueError, match=r"does not take: \['bogus'\]"):
        audiocraft_encodec_config(yaml.safe_dump(xp_cfg(encodec__bogus=1)))
    with pytest.raises(ValueError, match="not valid YAML"):
        audiocraft_encodec_config("a: [1, 2")
    with pytest.raises(ValueError, match="interpolation"):
        audiocraft_encodec_config(yaml.safe_dump(xp_cfg(encodec__sample_rate="${nowhere}")))
    with pytest.raises(ValueError, match=r"needs 'pretrained' or both 'xp.cfg' and 'best_state'.*\['xp.cfg'\]"):
        encodec_from_audiocraft({"xp.cfg": "{}"})


def _hf_cache(root: Path, repo: str, folder_from: Path) -> None:
    """Lay ``folder_from``'s files out as huggingface_hub caches a download of ``repo`` at revision main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in folder_from.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())


def test_audiocraft_pretrained_from_local_folders(tmp_path: Path) -> None:
    config = tiny_encodec_config(sample_rate=32000, upsampling_ratios=(8, 5, 4, 4), codebook_size=2048)
    config["target_bandwidths"] = [2.2]
    reference = EncodecCodec.from_config(config, seed=0)
    reference.save_pretrained(tmp_path / "hf")
    package = {"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.3.0"}
    wav = noise(1, 1, 6400, seed=5)
    direct = encodec_from_audiocraft(package, pretrained_dir=tmp_path / "hf", num_codebooks=4)
    assert direct.num_codebooks == 4 and torch.equal(direct.encode(wav), reference.encode(wav))
    with pytest.raises(FileNotFoundError, match=r"'facebook/encodec_32khz'.*not in the local cache.*pretrained_dir"):
        encodec_from_audiocraft(package, cache_dir=tmp_path / "empty_cache")
    _hf_cache(tmp_path / "cache", "facebook/encodec_32khz", tmp_path / "hf")
    cached = encodec_from_audiocraft(package, cache_dir=tmp_path / "cache")
    assert torch.equal(cached.encode(wav), reference.encode(wav))
    with pytest.raises(ValueError, match=r"gives 8 codebooks.*\{2.2: 4\}"):
        encodec_from_audiocraft(package, pretrained_dir=tmp_path / "hf", num_codebooks=8)
    with pytest.raises(ValueError, match="'dac_44khz' is not an EnCodec"):
        encodec_from_audiocraft({"pretrained": "dac_44khz"})
    torch.save(package, tmp_path / "compression_state_dict.bin")
    loaded = load_encodec_checkpoint(tmp_path / "compression_state_dict.bin", pretrained_dir=tmp_path / "hf")
    assert torch.equal(loaded.encode(wav), reference.encode(wav))


# ---------------------------------------------------------------------------------------------- framed codecs


@pytest.fixture(scope="module")
def chunked() -> EncodecCodec:
    config = tiny_encodec_config(channels=2)
    config.update(chunk_length_s=0.1, overlap=0.01, normalize=True)  # chunks of 1600 samples every 1584
    return EncodecCodec.from_config(config, seed=0)


def test_chunked_round_trip(chunked: EncodecCodec) -> None:
    wav = noise(2, 2, 5000, seed=6)
    frames = chunked.encode_frames(wav)
    assert [tuple(codes.shape) for codes, _ in frames] == [(2, 4, 5)] * 3 + [(2, 4, 1)]  # 5000 = 3 * 1584 + 248
    assert all(scale.shape == (2, 1) for _, scale in frames)
    with torch.no_grad():
        reference = chunked.model.encode(wav, bandwidth=chunked.bandwidth)
        pad = reference.last_frame_pad_length
        ref_audio = chunked.model.decode(reference.audio_codes, reference.audio_scales, last_frame_pad_length=pad)
    assert torch.equal(torch.stack([c for c, _ in frames[:-1]]), reference.audio_codes[:-1])
    audio = chunked.decode_frames(frames)
    assert audio.shape == (2, 2, 3 * 1584 + 320) and torch.equal(audio, ref_audio.audio_values)
    # the scale restores loudness: louder input, same codes, louder output
    loud = chunked.encode_frames(4 * wav)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(frames, loud, strict=True))
    assert torch.allclose(chunked.decode_frames(loud), 4 * audio, atol=1e-5)
    assert len(chunked.encode_frames(wav[..., :1584])) == 1 and len(chunked.encode_frames(wav[..., :1585])) == 2
    assert math.isclose(chunked.frame_rate, 50.0)


def test_chunked_refuses_token_sequences(chunked: EncodecCodec) -> None:
    assert chunked.framed and not EncodecCodec.from_config(tiny_encodec_config(), seed=0).framed
    arguments = {
        "encode": noise(1, 2, 800),
        "decode": torch.zeros(1, 4, 5, dtype=torch.long),
        "encode_latent": noise(1, 2, 800),
        "decode_latent": torch.zeros(1, 32, 5),
    }
    for method, argument in arguments.items():
        with pytest.raises(
            ValueError, match=rf"EncodecCodec\.{method} needs .*per-chunk loudness scales.*encode_frames"
        ):
            getattr(chunked, method)(argument)


def test_decode_frames_checks_its_input(chunked: EncodecCodec) -> None:
    frames = chunked.encode_frames(noise(1, 2, 5000, seed=7))
    with pytest.raises(ValueError, match="at least one"):
        chunked.decode_frames([])
    with pytest.raises(ValueError, match=r"frame 1 needs a float scale shaped \[B=1, 1\].*None"):
        chunked.decode_frames([frames[0], (frames[1][0], None)])
    with pytest.raises(ValueError, match=r"frame 1 codes have shape \(1, 4, 1\) but frame 0 has \(1, 4, 5\)"):
        chunked.decode_frames([frames[0], frames[-1], frames[1]])
    with pytest.raises(ValueError, match=r"frame 0 codes must lie in \[0, 128\)"):
        chunked.decode_frames([(frames[0][0] + 128, frames[0][1])])
    plain = EncodecCodec.from_config(tiny_encodec_config(), seed=0)
    wav = noise(1, 1, 2000)
    (codes, scale), = plain.encode_frames(wav)  # fmt: skip
    assert scale is None and torch.equal(codes, plain.encode(wav))
    assert torch.equal(plain.decode_frames([(codes, None)]), plain.decode(codes))
    with pytest.raises(ValueError, match="exactly one frame, got 2"):
        plain.decode_frames([(codes, None)] * 2)
    with pytest.raises(ValueError, match="does not normalise"):
        plain.decode_frames([(codes, torch.ones(1, 1))])


def test_chunked_config_needs_an_overlap() -> None:
    config = tiny_encodec_config()
    config.update(chunk_length_s=0.1, overlap=None)
    with pytest.raises(ValueError, match=r"chunk_length_s=0.1\) needs an overlap.*overlap=None"):
        EncodecCodec.from_config(config)

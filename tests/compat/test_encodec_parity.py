"""EnCodec checkpoints of encodec 0.1.1 and audiocraft 1.3.0 loaded by tokenlm code audio exactly as the originals.

Tiny random models are built with the libraries' own classes (the encodec package's ``EncodecModel`` as its
``_get_model`` builds it, audiocraft's through ``builders.get_compression_model``), their weights and codebooks
randomised, saved the way each library ships them (a ``.th`` state dict under the released file name; an exported
``{"xp.cfg", "best_state"}`` package), and loaded by :mod:`tokenlm.convert.encodec_checkpoints` and the modules it
dispatches to (``encodec_package``, ``encodec_audiocraft``, ``encodec_seanet``), which import neither library. Codes
must be identical, decoded audio within 1e-5.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tokenlm.codecs.encodec import EncodecCodec, tiny_encodec_config
from tokenlm.convert.encodec_audiocraft import encodec_from_audiocraft
from tokenlm.convert.encodec_checkpoints import convert_encodec_package_checkpoint, load_encodec_checkpoint
from tokenlm.convert.encodec_package import load_encodec_package_checkpoint

ATOL = 1e-5


def noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return 0.2 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def randomise(model: torch.nn.Module, codebooks: list[torch.nn.Module], probe: torch.Tensor, encoder: torch.nn.Module):
    """Perturb every weight, then fill each codebook from the residuals of the encoder's latents of ``probe``."""
    for param in model.parameters():
        param.add_(0.05 * torch.randn_like(param))
    residual = encoder(probe).transpose(1, 2).reshape(-1, codebooks[0].embed.shape[1])  # [B * T, D]
    for codebook in codebooks:
        bins = codebook.embed.shape[0]
        embed = residual[torch.randint(residual.shape[0], (bins,))] + 0.02 * torch.randn(bins, residual.shape[1])
        codebook.embed.copy_(embed)
        codebook.embed_avg.copy_(embed)
        codebook.inited.fill_(1)
        distances = torch.cdist(residual, embed)  # [B * T, bins]
        residual = residual - embed[distances.argmin(-1)]


# ---------------------------------------------------------------------------------------- encodec 0.1.1 package


def package_model(variant: int, seed: int = 0):
    """A tiny encodec-package model built as ``EncodecModel._get_model`` builds the 24 / 48 kHz ones (n_filters 4)."""
    from encodec import EncodecModel
    from encodec.modules import SEANetDecoder, SEANetEncoder
    from encodec.quantization import ResidualVectorQuantizer

    torch.manual_seed(seed)
    if variant == 24:
        rate, channels, causal, norm, normalize, segment = 24_000, 1, True, "weight_norm", False, None
        bandwidths = [1.5, 3.0, 6.0, 12.0, 24.0]
    else:
        rate, channels, causal, norm, normalize, segment = 48_000, 2, False, "time_group_norm", True, 1.0
        bandwidths = [3.0, 6.0, 12.0, 24.0]
    sizes = {"channels": channels, "norm": norm, "causal": causal, "n_filters": 4, "dimension": 8, "lstm": 1}
    encoder, decoder = SEANetEncoder(**sizes), SEANetDecoder(**sizes)
    n_q = int(1000 * bandwidths[-1] // (math.ceil(rate / encoder.hop_length) * 10))  # as _get_model
    quantizer = ResidualVectorQuantizer(dimension=8, n_q=n_q, bins=1024)
    model = EncodecModel(encoder, decoder, quantizer, bandwidths, rate, channels, normalize=normalize, segment=segment)
    codebooks = [layer._codebook for layer in quantizer.vq.layers]
    randomise(model, codebooks, noise(2, channels, rate // 4, seed=seed + 10), encoder)
    return model.eval()


@pytest.fixture(scope="module")
def package_files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[torch.nn.Module, Path]]:
    folder = tmp_path_factory.mktemp("encodec_package")
    files = {}
    for variant, name in ((24, "encodec_24khz-d7cc33bc.th"), (48, "encodec_48khz-7e698e3e.th")):
        model = package_model(variant)
        torch.save(model.state_dict(), folder / name)
        files[variant] = (model, folder / name)
    return files


def _compare_package(model, codec: EncodecCodec, wav: torch.Tensor) -> float:
    """Assert tokenlm's frames equal the package's; returns the max decoded-audio difference."""
    model.set_target_bandwidth(codec.bandwidth)
    with torch.no_grad():
        expected = model.encode(wav)
        reference = model.decode(expected)
    frames = codec.encode_frames(wav)
    assert len(frames) == len(expected)
    for (codes, scale), (ref_codes, ref_scale) in zip(frames, expected, strict=True):
        assert torch.equal(codes, ref_codes)
        assert (scale is None) == (ref_scale is None)
        if scale is not None:
            assert torch.allclose(scale, ref_scale, rtol=1e-6, atol=0)
    audio = codec.decode_frames(frames)
    assert audio.shape == reference.shape
    return (audio - reference).abs().max().item()


@pytest.mark.parametrize("bandwidth", [1.5, 6.0, 24.0])
def test_package_24khz_parity(package_files, bandwidth: float) -> None:
    model, path = package_files[24]
    codec = load_encodec_package_checkpoint(path, bandwidth=bandwidth)
    assert not codec.framed and codec.num_codebooks == {1.5: 2, 6.0: 8, 24.0: 32}[bandwidth]
    wav = noise(2, 1, 12_000 + 77, seed=1)
    assert _compare_package(model, codec, wav) <= ATOL
    model.set_target_bandwidth(bandwidth)
    with torch.no_grad():
        (ref_codes, _), = model.encode(wav)  # fmt: skip
    assert torch.equal(codec.encode(wav), ref_codes)  # the plain token interface of an unchunked model


@pytest.mark.parametrize("bandwidth", [3.0, 12.0, 24.0])
def test_package_48khz_parity(package_files, bandwidth: float) -> None:
    model, path = package_files[48]
    codec = load_encodec_package_checkpoint(path, bandwidth=bandwidth)
    assert codec.framed and codec.channels == 2 and codec.num_codebooks == {3.0: 2, 12.0: 8, 24.0: 16}[bandwidth]
    wav = noise(1, 2, 48_000 * 2 + 5_000, seed=2)  # three chunks, the last short
    assert _compare_package(model, codec, wav) <= ATOL


def test_package_converted_folder(package_files, tmp_path: Path) -> None:
    model, path = package_files[48]
    folder = convert_encodec_package_checkpoint(path, tmp_path / "encodec_48khz")
    codec = EncodecCodec.from_pretrained(folder, bandwidth=6.0)
    assert _compare_package(model, codec, noise(1, 2, 60_000, seed=3)) <= ATOL


# ------------------------------------------------------------------------------------------------- audiocraft


def audiocraft_cfg(*, causal: bool = False, renormalize: bool = False, group_norm: bool = False):
    """An EnCodec ``xp.cfg`` as audiocraft's config/model/encodec/default.yaml gives it, at a tiny scale."""
    return OmegaConf.create({
        "device": "cpu",
        "sample_rate": 16000,
        "channels": 1,
        "compression_model": "encodec",
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": "${sample_rate}",
                    "channels": "${channels}", "causal": causal, "renormalize": renormalize},
        "seanet": {"dimension": 8, "channels": "${channels}", "causal": "${encodec.causal}", "n_filters": 4,
                   "n_residual_layers": 1, "ratios": [8, 5, 4, 2], "activation": "ELU",
                   "activation_params": {"alpha": 1.0}, "norm": "time_group_norm" if group_norm else "weight_norm",
                   "norm_params": {}, "kernel_size": 7, "residual_kernel_size": 3, "last_kernel_size": 7,
                   "dilation_base": 2, "pad_mode": "reflect" if group_norm else "constant", "true_skip": not group_norm,
                   "compress": 2, "lstm": 2, "disable_norm_outer_blocks": 0,
                   "decoder": {"trim_right_ratio": 1.0, "final_activation": None, "final_activation_params": None},
                   "encoder": {}},
        "rvq": {"n_q": 4, "q_dropout": True, "bins": 64, "decay": 0.99, "kmeans_init": True, "kmeans_iters": 10,
                "threshold_ema_dead_code": 2, "orthogonal_reg_weight": 0.0, "orthogonal_reg_active_codes_only": False},
    })  # fmt: skip


def audiocraft_model(cfg, seed: int = 0):
    from audiocraft.models import builders

    torch.manual_seed(seed)
    model = builders.get_compression_model(cfg)
    codebooks = [layer._codebook for layer in model.quantizer.vq.layers]
    randomise(model, codebooks, noise(2, 1, 8000, seed=seed + 20), model.encoder)
    return model.eval()


@pytest.mark.parametrize(
    "options",
    [{}, {"causal": True}, {"renormalize": True, "group_norm": True}],
    ids=["default", "causal", "renormalize-groupnorm-convskip"],
)
def test_audiocraft_xp_cfg_parity(options: dict, tmp_path: Path) -> None:
    cfg = audiocraft_cfg(**options)
    model = audiocraft_model(cfg)
    package = {"xp.cfg": OmegaConf.to_yaml(cfg), "best_state": model.state_dict(), "version": "1.3.0", "exported": True}
    torch.save(package, tmp_path / "compression_state_dict.bin")
    wav = noise(2, 1, 5_000 + 33, seed=4)
    for k in (1, 2, 4):
        codec = load_encodec_checkpoint(tmp_path / "compression_state_dict.bin", num_codebooks=k)
        model.set_num_codebooks(k)
        with torch.no_grad():
            ref_codes, ref_scale = model.encode(wav)
            reference = model.decode(ref_codes, ref_scale)
        if options.get("renormalize"):
            (codes, scale), = codec.encode_frames(wav)  # fmt: skip
            assert torch.allclose(scale, ref_scale, rtol=1e-6, atol=0)
            audio = codec.decode_frames([(codes, scale)])
        else:
            codes = codec.encode(wav)
            audio = codec.decode(codes)
        assert codes.shape == (2, k, 16) and torch.equal(codes, ref_codes)
        assert codes.unique().numel() > 4  # the codebooks are really used
        assert (audio - reference).abs().max().item() <= ATOL


def test_audiocraft_pretrained_parity(tmp_path: Path) -> None:
    """``{"pretrained": name}`` from a local folder, against audiocraft's wrapper of the same transformers model."""
    from audiocraft.models.encodec import HFEncodecCompressionModel
    from transformers import EncodecModel

    config = tiny_encodec_config(sample_rate=32000, upsampling_ratios=(8, 5, 4, 4), codebook_size=2048)
    config["target_bandwidths"] = [2.2]
    EncodecCodec.from_config(config, seed=0).save_pretrained(tmp_path / "encodec_32khz")
    reference = HFEncodecCompressionModel(EncodecModel.from_pretrained(tmp_path / "encodec_32khz")).eval()
    package = {"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.3.0"}
    codec = encodec_from_audiocraft(package, pretrained_dir=tmp_path / "encodec_32khz", num_codebooks=4)
    assert codec.num_codebooks == reference.num_codebooks == 4
    wav = noise(2, 1, 32_000, seed=5)
    with torch.no_grad():
        ref_codes, ref_scale = reference.encode(wav)
        ref_audio = reference.decode(ref_codes, ref_scale)
    codes = codec.encode(wav)
    assert torch.equal(codes, ref_codes)
    assert (codec.decode(codes) - ref_audio).abs().max().item() <= ATOL


@pytest.mark.parametrize("variant", [24, 48])
def test_package_released_architectures(variant: int, tmp_path: Path) -> None:
    """The released sizes (32 filters, 2 LSTM layers, 128-d latent, 32 / 16 codebooks of 1024), random weights."""
    from encodec import EncodecModel

    torch.manual_seed(variant)
    build = EncodecModel.encodec_model_24khz if variant == 24 else EncodecModel.encodec_model_48khz
    model = build(pretrained=False)
    codebooks = [layer._codebook for layer in model.quantizer.vq.layers]
    randomise(model, codebooks, noise(1, model.channels, model.sample_rate // 2), model.encoder)
    path = tmp_path / ("encodec_24khz-d7cc33bc.th" if variant == 24 else "encodec_48khz-7e698e3e.th")
    torch.save(model.eval().state_dict(), path)
    codec = load_encodec_package_checkpoint(path, bandwidth=model.target_bandwidths[-1])
    config = codec.model.config
    assert (config.num_filters, config.num_lstm_layers, config.hidden_size) == (32, 2, 128)
    assert codec.num_codebooks == {24: 32, 48: 16}[variant]
    wav = noise(1, model.channels, int(model.sample_rate * (0.4 if variant == 24 else 1.2)), seed=6)
    assert _compare_package(model, codec, wav) <= ATOL

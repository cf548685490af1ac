"""Shipped default models: names, packing a trained run into an asset, and damaged assets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import tokenlm.defaults as defaults
from conditioners.text.minilm import MiniLMConditioner
from tokenlm.api import TextToAudio
from tokenlm.codecs import EncodecCodec
from tokenlm.common.assets import asset_path
from tokenlm.common.checkpoint import CheckpointError
from tokenlm.lm.backend import LMBackend
from tokenlm.lm.model import LMConfig, LMModel
from tokenlm.train.pack import pack_model


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    """A tiny LM on the shipped codec (2 kbps) with the packaged MiniLM, saved as a run's export would be."""
    torch.manual_seed(0)
    codec = EncodecCodec.from_pretrained(asset_path("codec_sfx16k"), bandwidth=2.0)
    text = MiniLMConditioner("description", 32, max_length=16)
    lm = LMModel(LMConfig(num_codebooks=4, cardinality=1024, dim=32, num_layers=1, num_heads=2, ffn_dim=64))
    backend = LMBackend(lm, codec, [text], max_duration=2.0)
    return backend.save_pretrained(tmp_path_factory.mktemp("export") / "export")


@pytest.fixture
def assets_dir(tmp_path) -> Path:
    root = tmp_path / "assets"
    root.mkdir()
    shutil.copytree(asset_path("codec_sfx16k"), root / "codec_sfx16k")
    return root


def test_packing_references_the_codec_and_minilm_stores_fp16_and_loads_back_equal(tiny_export, assets_dir):
    target = pack_model(tiny_export, "lm_tiny", assets_dir=assets_dir)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]  # no codec/, no MiniLM
    with safe_open(str(target / "model.safetensors"), "pt") as f:
        names = list(f.keys())
        assert all(f.get_tensor(n).dtype in (torch.float16, torch.int64, torch.bool) for n in names)
    assert not [n for n in names if ".encoder." in n] and any("output_proj" in n for n in names)
    size = (target / "model.safetensors").stat().st_size
    assert size < (tiny_export / "model.safetensors").stat().st_size / 20  # the 90 MB MiniLM is referenced

    original = LMBackend.from_pretrained(tiny_export)
    packed = LMBackend.from_pretrained(target)
    for (name, a), b in zip(original.lm.state_dict().items(), packed.lm.state_dict().values(), strict=True):
        assert b.dtype == a.dtype and torch.allclose(a, b, atol=1e-3 * float(a.abs().max()) + 1e-7), name
    sequence = torch.randint(0, 1024, (1, 4, 12))
    attributes = [{"description": "a sine tone at 440 Hz"}]
    with torch.no_grad():
        a = original.lm(sequence, original.lm.condition_context(original.conditioning.encode(attributes)))
        b = packed.lm(sequence, packed.lm.condition_context(packed.conditioning.encode(attributes)))
    assert torch.allclose(a, b, atol=2e-2), float((a - b).abs().max())


def test_packing_refuses_a_model_trained_on_another_codec(tiny_export, assets_dir):
    other = EncodecCodec.from_config(EncodecCodec.from_pretrained(assets_dir / "codec_sfx16k").model.config, seed=1)
    other.save_pretrained(assets_dir / "codec_other")
    with pytest.raises(ValueError, match="not trained on the shipped codec"):
        pack_model(tiny_export, "lm_tiny", codec_asset="codec_other", assets_dir=assets_dir)
    assert not (assets_dir / "lm_tiny").exists()


def test_an_unknown_or_unshipped_default_names_the_shipped_defaults(tiny_export, assets_dir, monkeypatch):
    monkeypatch.setattr(defaults, "ASSETS_DIR", assets_dir)
    with pytest.raises(ValueError, match="ships no default model"):
        TextToAudio.from_pretrained("default")
    pack_model(tiny_export, "lm_sfx16k", assets_dir=assets_dir)
    with pytest.raises(ValueError, match=r"'default-ldm' is not shipped: the shipped defaults are \['default'\]"):
        TextToAudio.from_pretrained("default-ldm")
    with pytest.raises(ValueError, match=r"'default-xl' is not a default model: the shipped defaults are \['default"):
        TextToAudio.from_pretrained("default-xl")


def test_a_damaged_default_names_the_file_and_how_to_restore_it(tiny_export, assets_dir, monkeypatch):
    pack_model(tiny_export, "lm_sfx16k", assets_dir=assets_dir)
    monkeypatch.setattr(defaults, "ASSETS_DIR", assets_dir)
    assert TextToAudio.from_pretrained("default").sample_rate == 16000
    weights = assets_dir / "lm_sfx16k" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a truncated download
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*pip install --force-reinstall tokenlm"):
        TextToAudio.from_pretrained("default")


def test_assets_cli_lists_the_shipped_models_and_packs_a_run(tiny_export, assets_dir, capsys):
    from tokenlm import cli

    assert cli.main(["assets", "list"]) == 0
    listing = capsys.readouterr().out
    assert "codec_sfx16k" in listing and any(line.split()[0] == "lm_sfx16k" and "default" in line
                                             for line in listing.splitlines())
    assert cli.main(["assets", "pack", str(tiny_export), "--name", "lm_cli", "--assets-dir", str(assets_dir)]) == 0
    assert "packed" in capsys.readouterr().out and (assets_dir / "lm_cli" / "config.json").is_file()
    assert cli.main(["assets", "pack", str(tiny_export), "--name", "x", "--codec", "nope",
                     "--assets-dir", str(assets_dir)]) == 2

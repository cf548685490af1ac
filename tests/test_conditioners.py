"""Conditioner registry, T5 conditioner (against transformers as oracle) and SentencePiece conditioner."""

from __future__ import annotations

import json
import re
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_model, save_model

from conditioners import Condition, available_conditioners, build_conditioner, get_conditioner_class, registry
from conditioners.text.sentencepiece import SentencePieceConditioner, train_sentencepiece
from conditioners.text.t5 import T5Conditioner

SHORT = "a dog barks twice"
LONG = "jazz piano with soft drums in a small room near a river at night"


def _seeded(factory, seed: int = 0):
    """Build a module under a local seed without touching the global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return factory()


@pytest.fixture
def t5_cond(tiny_t5_dir: Path) -> T5Conditioner:
    return _seeded(lambda: T5Conditioner("description", 24, tiny_t5_dir, max_length=64))


@pytest.fixture
def sp_cond(spm_model_path: Path) -> SentencePieceConditioner:
    return _seeded(
        lambda: SentencePieceConditioner(
            "description", 24, spm_model_path, dim=32, num_layers=2, num_heads=2, max_length=64, dropout=0.1
        )
    )


# ---------------------------------------------------------------------------------------------- registry


def test_registry_lists_and_loads_builtin_kinds() -> None:
    kinds = available_conditioners()
    assert {"t5", "sentencepiece"} <= set(kinds)
    assert get_conditioner_class("t5") is T5Conditioner
    assert get_conditioner_class("sentencepiece") is SentencePieceConditioner


def test_registry_builds_both(tiny_t5_dir: Path, spm_model_path: Path) -> None:
    t5_config = {"attribute": "description", "output_dim": 16, "encoder_path": str(tiny_t5_dir)}
    t5 = build_conditioner("t5", t5_config)
    sp = build_conditioner(
        "sentencepiece",
        {"attribute": "genre", "output_dim": 16, "spm_path": str(spm_model_path), "dim": 32, "num_heads": 2},
    )
    assert isinstance(t5, T5Conditioner) and isinstance(sp, SentencePieceConditioner)
    assert t5.encode([SHORT]).embeds.shape[-1] == 16
    assert sp.attribute == "genre" and sp.encode([SHORT]).embeds.shape[-1] == 16


def test_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(ValueError, match="nope") as info:
        get_conditioner_class("nope")
    assert "t5" in str(info.value) and "sentencepiece" in str(info.value)


def test_broken_plugin_names_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint("broken", "no_such_module_xyz:Thing", registry.GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"broken": ep})
    with pytest.raises(ImportError, match="broken.*no_such_module_xyz") as info:
        get_conditioner_class("broken")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_plugin_that_is_not_a_conditioner(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint("odd", "pathlib:Path", registry.GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"odd": ep})
    with pytest.raises(TypeError, match="not a Conditioner"):
        get_conditioner_class("odd")


# ---------------------------------------------------------------------------------------------- T5


def test_t5_matches_transformers(t5_cond: T5Conditioner, tiny_t5_dir: Path) -> None:
    from transformers import AutoTokenizer, T5EncoderModel

    texts = [SHORT, LONG, "rain"]
    out = t5_cond.encode(texts)
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)
    encoder = T5EncoderModel.from_pretrained(tiny_t5_dir).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state  # [B, S, 32]
        ref = t5_cond.output_proj(hidden) * batch["attention_mask"][..., None]  # [B, S, 24]
    assert isinstance(out, Condition) and out.embeds.shape == (3, batch["input_ids"].shape[1], 24)
    assert torch.equal(out.mask, batch["attention_mask"].bool())
    torch.testing.assert_close(out.embeds, ref)


def test_t5_projection_modes(tiny_t5_dir: Path) -> None:
    assert isinstance(T5Conditioner("d", 32, tiny_t5_dir).output_proj, torch.nn.Identity)
    same = T5Conditioner("d", None, tiny_t5_dir)
    assert same.output_dim == 32 and isinstance(same.output_proj, torch.nn.Identity)
    forced = T5Conditioner("d", 32, tiny_t5_dir, project=True).output_proj
    assert isinstance(forced, torch.nn.Linear) and forced.bias is not None
    with pytest.raises(ValueError, match="d_model"):
        T5Conditioner("d", 24, tiny_t5_dir, project=False)


def test_t5_null_rows_are_zero(t5_cond: T5Conditioner) -> None:
    out = t5_cond.encode([SHORT, None])
    assert out.mask[0].any() and not out.mask[1].any()
    assert torch.equal(out.embeds[1], torch.zeros_like(out.embeds[1]))
    assert (out.embeds[0][~out.mask[0]] == 0).all()
    only_null = t5_cond.encode([None, None])
    assert not only_null.mask.any() and torch.equal(only_null.embeds, torch.zeros_like(only_null.embeds))


def test_t5_frozen_and_stays_eval(t5_cond: T5Conditioner) -> None:
    t5_cond.train()
    assert t5_cond.training and t5_cond.output_proj.training and not t5_cond.encoder.training
    assert not any(p.requires_grad for p in t5_cond.encoder.parameters())
    t5_cond.encode([SHORT, LONG]).embeds.pow(2).sum().backward()
    assert all(p.grad is None for p in t5_cond.encoder.parameters())
    assert t5_cond.output_proj.weight.grad is not None and t5_cond.output_proj.weight.grad.abs().sum() > 0


def test_t5_finetune_trains_encoder(tiny_t5_dir: Path) -> None:
    cond = T5Conditioner("description", 24, tiny_t5_dir, finetune=True).train()
    assert cond.encoder.training
    cond.encode([SHORT]).embeds.pow(2).sum().backward()
    assert cond.encoder.shared.weight.grad is not None


def test_t5_truncates(tiny_t5_dir: Path) -> None:
    cond = T5Conditioner("description", 24, tiny_t5_dir, max_length=4)
    assert cond.encode([LONG]).embeds.shape[1] == 4


def test_t5_round_trip(t5_cond: T5Conditioner, tmp_path: Path) -> None:
    config = json.loads(json.dumps(t5_cond.config()))
    assert "encoder_path" not in config
    t5_cond.save_assets(tmp_path)
    save_model(t5_cond, str(tmp_path / "model.safetensors"))
    assert not list((tmp_path / "t5").glob("*.safetensors")) and not list((tmp_path / "t5").glob("*.bin"))
    rebuilt = _seeded(lambda: build_conditioner("t5", config, tmp_path), seed=1)
    texts = [LONG, None, SHORT]
    assert not torch.equal(rebuilt.encode(texts).embeds, t5_cond.encode(texts).embeds)  # random init
    load_model(rebuilt, str(tmp_path / "model.safetensors"))
    assert torch.equal(rebuilt.encode(texts).embeds, t5_cond.encode(texts).embeds)


def test_t5_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing_t5.*local Hugging Face"):
        T5Conditioner("description", 8, tmp_path / "missing_t5")
    with pytest.raises(ValueError, match="no config.json"):
        T5Conditioner("description", 8, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="bert"):
        T5Conditioner("description", 8, tmp_path)


# ---------------------------------------------------------------------------------------------- SentencePiece


def test_sp_shapes_and_mask(sp_cond: SentencePieceConditioner) -> None:
    sp_cond.eval()
    out = sp_cond.encode([SHORT, LONG])
    lengths = [len(sp_cond.sp.encode(t)) for t in (SHORT, LONG)]
    assert out.embeds.shape == (2, max(lengths), 24) and out.mask.dtype == torch.bool
    assert out.mask.sum(dim=1).tolist() == lengths
    assert (out.embeds[~out.mask] == 0).all()


@pytest.mark.parametrize("training", [True, False])
def test_sp_null_row_zero_without_nan(sp_cond: SentencePieceConditioner, training: bool) -> None:
    sp_cond.train(training)
    out = sp_cond.encode([SHORT, None])
    assert not out.mask[1].any() and torch.equal(out.embeds[1], torch.zeros_like(out.embeds[1]))
    only_null = sp_cond.encode([None])
    assert only_null.embeds.shape == (1, 1, 24) and not only_null.embeds.isnan().any()
    if training:
        out.embeds.pow(2).sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in sp_cond.parameters() if p.grad is not None)


def test_sp_deterministic_in_eval(sp_cond: SentencePieceConditioner) -> None:
    sp_cond.eval()
    assert torch.equal(sp_cond.encode([SHORT, LONG]).embeds, sp_cond.encode([SHORT, LONG]).embeds)


def test_sp_gradients_reach_every_part(sp_cond: SentencePieceConditioner) -> None:
    sp_cond.train()
    sp_cond.encode([SHORT, LONG, None]).embeds.pow(2).sum().backward()
    for name, param in sp_cond.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_sp_padding_invariance(spm_model_path: Path, positions: str) -> None:
    cond = SentencePieceConditioner(
        "description", 24, spm_model_path, dim=32, num_layers=2, num_heads=2, positions=positions
    ).eval()
    alone = cond.encode([SHORT])
    batched = cond.encode([SHORT, LONG])
    n = int(alone.mask.sum())
    assert batched.embeds.shape[1] > n
    torch.testing.assert_close(batched.embeds[0, :n], alone.embeds[0, :n], atol=1e-5, rtol=1e-5)


def test_sp_truncates(spm_model_path: Path) -> None:
    cond = SentencePieceConditioner("description", 8, spm_model_path, dim=16, num_layers=1, max_length=3)
    assert cond.encode([LONG]).embeds.shape == (1, 3, 8)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_sp_round_trip(spm_model_path: Path, tmp_path: Path, positions: str) -> None:
    cond = SentencePieceConditioner(
        "description", 24, spm_model_path, dim=32, num_layers=1, num_heads=2, positions=positions
    ).eval()
    config = json.loads(json.dumps(cond.config()))
    cond.save_assets(tmp_path)
    save_model(cond, str(tmp_path / "model.safetensors"))
    assert (tmp_path / "spm.model").read_bytes() == spm_model_path.read_bytes()
    rebuilt = build_conditioner("sentencepiece", config, tmp_path).eval()
    load_model(rebuilt, str(tmp_path / "model.safetensors"))
    texts = [LONG, None, SHORT]
    assert torch.equal(rebuilt.encode(texts).embeds, cond.encode(texts).embeds)


def test_train_sentencepiece_errors(tmp_path: Path, captions: list[str]) -> None:
    with pytest.raises(ValueError, match="too few"):
        train_sentencepiece(captions[:5], tmp_path, vocab_size=5000)
    with pytest.raises(ValueError, match="non-empty caption"):
        train_sentencepiece(["", "  "], tmp_path)
    path = train_sentencepiece(captions, tmp_path, vocab_size=64, model_type="bpe")
    assert path == tmp_path / "spm.model" and path.stat().st_size > 0


# ---------------------------------------------------------------------------------------------- values


@pytest.mark.parametrize("which", ["t5", "sp"])
@pytest.mark.parametrize(
    ("value", "pattern"), [("", "empty string"), ("   ", "empty string"), (3, "int 3"), (["a"], "list ['a']")]
)
def test_bad_values_raise(request: pytest.FixtureRequest, which: str, value: object, pattern: str) -> None:
    cond = request.getfixturevalue("t5_cond" if which == "t5" else "sp_cond")
    with pytest.raises(ValueError, match=re.escape(pattern)):
        cond.encode([SHORT, value])
    with pytest.raises(ValueError, match=re.escape(pattern)):
        cond.prepare([value])

"""Frozen pretrained conditioners: the packaged all-MiniLM-L6-v2 sentence encoder, CLAP (tiny random model),
and the on-disk embedding cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_model, save_model

from conditioners import build_conditioner
from conditioners.base import AudioValue
from conditioners.clap import ClapConditioner
from conditioners.text.minilm import MiniLMConditioner, packaged_minilm_path

TEXTS = ["a dog barks twice", "soft jazz piano with brushed drums in a small club", "rain"]


def seeded(factory, seed: int = 0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return factory()


@pytest.fixture(scope="module")
def minilm_parts():
    """The packaged all-MiniLM-L6-v2 encoder and tokenizer, loaded once through the conditioner (offline)."""
    import os

    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        cond = MiniLMConditioner("description", None)
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE")
        else:
            os.environ["HF_HUB_OFFLINE"] = previous
    return cond.encoder, cond.tokenizer


@pytest.fixture
def minilm(minilm_parts) -> MiniLMConditioner:
    encoder, tokenizer = minilm_parts
    return seeded(lambda: MiniLMConditioner("description", 24, encoder=encoder, tokenizer=tokenizer))


def round_trip(conditioner, tmp_path: Path):
    """Rebuild from the JSON config + assets through the registry, then load the saved weights."""
    config = json.loads(json.dumps(conditioner.config()))
    conditioner.save_assets(tmp_path)
    save_model(conditioner, str(tmp_path / "model.safetensors"))
    rebuilt = seeded(lambda: build_conditioner(conditioner.kind, config, tmp_path), 1)
    load_model(rebuilt, str(tmp_path / "model.safetensors"))
    return rebuilt.eval()


# ---------------------------------------------------------------------------------------------- MiniLM


def test_minilm_is_the_real_pretrained_encoder(minilm: MiniLMConditioner) -> None:
    folder = packaged_minilm_path()
    assert (folder / "model.safetensors").stat().st_size > 80e6  # the real weights ship in the package
    assert minilm.encoder.config.hidden_size == 384 and minilm.encoder.config.num_hidden_layers == 6

    def sentence(texts):  # sentence-transformers' mean pooling over the token features
        inputs = minilm.prepare(texts)
        rows = minilm.text_rows(inputs)
        return torch.nn.functional.normalize(torch.stack([r.mean(dim=0) for r in rows]), dim=-1)

    dog, puppy, piano = sentence(["a dog barks loudly", "a puppy is barking", "soft jazz piano music"])
    assert dog @ puppy > dog @ piano + 0.2


def test_minilm_matches_transformers_and_masks(minilm: MiniLMConditioner) -> None:
    from transformers import AutoTokenizer

    out = minilm.encode([*TEXTS, None])
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path(), local_files_only=True)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = minilm.encoder(**batch).last_hidden_state  # [3, S, 384]
        expected = minilm.output_proj(hidden) * batch["attention_mask"][..., None]
    assert out.embeds.shape == (4, batch["input_ids"].shape[1], 24)
    assert torch.equal(out.mask[:3], batch["attention_mask"].bool()) and not out.mask[3].any()
    torch.testing.assert_close(out.embeds[:3], expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.embeds[3], torch.zeros_like(out.embeds[3]))


def test_minilm_is_frozen_and_stays_in_eval(minilm: MiniLMConditioner) -> None:
    minilm.train()
    assert minilm.training and not minilm.encoder.training
    minilm.encode(TEXTS).embeds.pow(2).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in minilm.encoder.parameters())
    assert minilm.output_proj.weight.grad.abs().sum() > 0


def test_minilm_errors(tmp_path: Path, minilm: MiniLMConditioner) -> None:
    with pytest.raises(FileNotFoundError, match=r"no_such_encoder.*does not exist"):
        MiniLMConditioner("description", 8, tmp_path / "no_such_encoder")
    with pytest.raises(ValueError, match="no config.json"):
        MiniLMConditioner("description", 8, tmp_path)
    with pytest.raises(ValueError, match=r"'description' takes str values .* got int 120"):
        minilm.encode([120])


def test_minilm_round_trip(minilm: MiniLMConditioner, tmp_path: Path) -> None:
    rebuilt = round_trip(minilm, tmp_path)
    assert not list((tmp_path / "encoder").glob("*.safetensors"))  # weights live in the checkpoint file only
    assert torch.equal(rebuilt.encode(TEXTS).embeds, minilm.eval().encode(TEXTS).embeds)


def test_embedding_cache_skips_the_encoder_for_seen_texts(minilm_parts, tmp_path: Path) -> None:
    encoder, tokenizer = minilm_parts
    cond = seeded(lambda: MiniLMConditioner("d", 24, encoder=encoder, tokenizer=tokenizer, cache_dir=tmp_path))
    first = cond.encode([*TEXTS, None])
    assert cond.cache.hits == 0 and len(list(tmp_path.rglob("*.safetensors"))) == 3
    inputs = cond.prepare([TEXTS[1], None, TEXTS[0]])
    assert inputs["rows"] == [] and inputs["input_ids"] is None  # nothing left to tokenise or encode
    again = cond(inputs)
    assert cond.cache.hits == 2
    torch.testing.assert_close(again.embeds[0, : again.mask[0].sum()], first.embeds[1, : first.mask[1].sum()])
    torch.testing.assert_close(again.embeds[2, : again.mask[2].sum()], first.embeds[0, : first.mask[0].sum()])
    # a different truncation is a different namespace: no stale hit
    short = MiniLMConditioner("d", 24, encoder=encoder, tokenizer=tokenizer, cache_dir=tmp_path, max_length=4)
    assert short.encode([TEXTS[1]]).embeds.shape[1] == 4 and short.cache.hits == 0


# ---------------------------------------------------------------------------------------------- CLAP


@pytest.fixture(scope="module")
def clap_reference(tiny_clap_dir: Path):
    from transformers import ClapModel, ClapProcessor

    return ClapModel.from_pretrained(tiny_clap_dir).eval(), ClapProcessor.from_pretrained(tiny_clap_dir)


def _clip(seconds: float = 0.5, rate: int = 16000, seed: int = 0) -> AudioValue:
    wav = 0.2 * torch.randn(1, int(seconds * rate), generator=torch.Generator().manual_seed(seed))
    return AudioValue(wav, rate)


def test_clap_text_and_audio_embeddings_match_transformers(tiny_clap_dir: Path, clap_reference) -> None:
    from tokenlm.audio import convert_audio

    model, processor = clap_reference
    cond = seeded(lambda: ClapConditioner("description", 24, tiny_clap_dir, train_on="audio"))
    assert cond.uses_training_audio and cond.sample_rate == 48000
    clip = _clip()
    out = cond.encode([TEXTS[0], clip, None])  # text and audio rows may mix
    assert out.embeds.shape == (3, 1, 24) and out.mask[:, 0].tolist() == [True, True, False]
    with torch.no_grad():
        tokens = processor.tokenizer([TEXTS[0]], return_tensors="pt")
        text = model.get_text_features(**tokens).pooler_output  # [1, 16], unit norm
        wav48 = convert_audio(clip.wav, 16000, 48000, 1)[0].numpy()
        features = processor.feature_extractor([wav48], sampling_rate=48000, return_tensors="pt")
        audio = model.get_audio_features(**features).pooler_output  # [1, 16]
        expected = cond.output_proj(torch.cat([text, audio]))
    torch.testing.assert_close(out.embeds[:2, 0], expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.embeds[2], torch.zeros(1, 24))
    torch.testing.assert_close(cond.encode([clip]).embeds, out.embeds[1:2])  # deterministic


def test_clap_penultimate_token_features(tiny_clap_dir: Path, clap_reference) -> None:
    model, processor = clap_reference
    cond = seeded(lambda: ClapConditioner("description", 24, tiny_clap_dir, features="penultimate"))
    out = cond.encode([TEXTS[0], TEXTS[1], None])
    batch = processor.tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.text_model(**batch, output_hidden_states=True).hidden_states[-2]  # [2, S, 32]
        expected = cond.output_proj(hidden) * batch["attention_mask"][..., None]
    assert out.embeds.shape == (3, batch["input_ids"].shape[1], 24)
    assert torch.equal(out.mask[:2], batch["attention_mask"].bool()) and not out.mask[2].any()
    torch.testing.assert_close(out.embeds[:2], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="penultimate' embed text only"):
        cond.encode([_clip()])


def test_clap_errors_and_round_trip(tiny_clap_dir: Path, tiny_t5_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train_on='audio' needs features='pooled'"):
        ClapConditioner("description", 8, tiny_clap_dir, train_on="audio", features="penultimate")
    with pytest.raises(ValueError, match="train_on must be one of"):
        ClapConditioner("description", 8, tiny_clap_dir, train_on="video")
    with pytest.raises(FileNotFoundError, match="missing_clap"):
        ClapConditioner("description", 8, tmp_path / "missing_clap")
    with pytest.raises(ValueError, match="holds a 't5' model"):
        ClapConditioner("description", 8, tiny_t5_dir)
    with pytest.raises(ValueError, match=r"takes str or AudioValue values .* got float 1.5"):
        ClapConditioner("description", 8, tiny_clap_dir).encode([1.5])
    with pytest.raises(ValueError, match="float waveform"):
        AudioValue(torch.zeros(100), 16000)
    # a ClapModel folder without its processor (feature extractor + tokenizer) is refused by the conditioner and
    # by the eval's CLAP embedder, naming what is missing
    import shutil

    from tokenlm.eval.embedders import load_embedder

    bare = tmp_path / "bare_clap"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_clap_dir / name, bare / name)
    with pytest.raises(ValueError, match="has no usable CLAP processor files"):
        ClapConditioner("description", 8, bare)
    with pytest.raises(FileNotFoundError, match="no CLAP feature extractor weights in"):
        load_embedder("clap", bare)
    cond = seeded(lambda: ClapConditioner("description", 24, tiny_clap_dir, train_on="audio"))
    rebuilt = round_trip(cond, tmp_path / "ckpt")
    assert rebuilt.train_on == "audio" and rebuilt.sample_rate == 48000
    values = [TEXTS[1], _clip(seed=3)]
    torch.testing.assert_close(rebuilt.encode(values).embeds, cond.eval().encode(values).embeds)


# ---------------------------------------------------------------------------------------------- numbers
def test_minilm_numbers_add_value_embeddings_on_number_tokens_only(minilm_parts, tmp_path: Path) -> None:
    encoder, tokenizer = minilm_parts
    plain = seeded(lambda: MiniLMConditioner("d", 24, encoder=encoder, tokenizer=tokenizer))
    numeric = seeded(lambda: MiniLMConditioner("d", 24, encoder=encoder, tokenizer=tokenizer, numbers=True))
    texts = ["clicks at 120 bpm", "a tone at C#4", None]
    inputs = numeric.prepare(texts)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(texts[0])["input_ids"])
    assert tokens[3] == "120"
    values = inputs["number_values"]
    assert values[2] is None
    assert values[0][3] == 120.0 and all(v != v for i, v in enumerate(values[0]) if i != 3)  # NaN elsewhere
    assert values[1][4:7] == [pytest.approx(440.0 * 2 ** (-8 / 12))] * 3  # "c", "#", "4" -> 277.18 Hz
    with_numbers, without = numeric(inputs), plain(plain.prepare(texts))
    difference = (with_numbers.embeds - without.embeds).abs().sum(-1)  # [B, S]
    is_number = torch.zeros_like(difference, dtype=torch.bool)
    is_number[0, 3] = True
    is_number[1, 4:7] = True
    assert torch.all(difference[is_number] > 0) and torch.all(difference[~is_number] == 0)
    expected = numeric.number_features(torch.tensor([120.0]))[0]
    torch.testing.assert_close(with_numbers.embeds[0, 3] - without.embeds[0, 3], expected)
    # a second pass through the embedding cache gives the same embeddings, number features included
    cached = seeded(lambda: MiniLMConditioner("d", 24, encoder=encoder, tokenizer=tokenizer, numbers=True,
                                              cache_dir=tmp_path / "cache"))
    first = cached.encode(texts).embeds
    assert len(cached.prepare(texts)["cached"]) == 2
    torch.testing.assert_close(cached.encode(texts).embeds, first)
    torch.testing.assert_close(first, with_numbers.embeds)


def test_minilm_numbers_round_trip_and_errors(minilm_parts, tmp_path: Path) -> None:
    encoder, tokenizer = minilm_parts
    numeric = seeded(lambda: MiniLMConditioner("d", 24, encoder=encoder, tokenizer=tokenizer, numbers=True))
    assert numeric.config()["numbers"] is True
    rebuilt = round_trip(numeric, tmp_path)
    assert rebuilt.number_features is not None
    texts = ["three bursts", "a 660 Hz sine, 2.5 s"]
    assert torch.equal(rebuilt.encode(texts).embeds, numeric.eval().encode(texts).embeds)
    import sentencepiece

    no_offsets = sentencepiece.SentencePieceProcessor()  # a tokenizer without character offsets
    with pytest.raises(ValueError, match="numbers=True needs a fast tokenizer.*SentencePieceProcessor"):
        MiniLMConditioner("d", 24, encoder=encoder, tokenizer=no_offsets, numbers=True)

"""Hugging Face MusicGen -> tokenlm: parity with transformers' own ``MusicgenForConditionalGeneration`` as oracle.

A tiny random MusicGen (T5 text encoder from the ``tiny_t5_dir`` fixture's config, 16 kHz mono EnCodec with
4 x 128 codes, 2-layer decoder) is saved with its processor like a Hub folder, then loaded by tokenlm.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoTokenizer,
    EncodecConfig,
    EncodecFeatureExtractor,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    MusicgenProcessor,
    T5Config,
)

from tokenlm import TextToAudio
from tokenlm.codecs import EncodecCodec, tiny_encodec_config
from tokenlm.convert import convert_musicgen_hf, load_musicgen_hf
from tokenlm.lm.backend import LMBackend
from tokenlm.lm.patterns import build_pattern
from tokenlm.lm.sampling import SamplingParams

CARD, K = 128, 4  # codebook size and codebooks of the tiny EnCodec
FRAME_RATE = 50  # tiny EnCodec: 16 kHz, hop 320
MAX_LENGTH = 100  # generation_config.max_length -> a 2 s window
PROMPTS = ["a dog barks twice", "jazz piano with soft drums in a small room near a river at night"]


def save_tiny_musicgen(folder: Path, t5_dir: Path, hidden: int = 48, seed: int = 0) -> MusicgenForConditionalGeneration:
    """Save a seeded random MusicGen plus its processor (tokenizer files) into ``folder``; return it in eval mode."""
    encodec_kwargs = tiny_encodec_config(codebook_size=CARD, num_codebooks=K)
    decoder = MusicgenDecoderConfig(
        vocab_size=CARD, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4, ffn_dim=96,
        num_codebooks=K, pad_token_id=CARD, bos_token_id=CARD, max_position_embeddings=256,
    )
    config = MusicgenConfig(
        text_encoder=T5Config.from_pretrained(t5_dir), audio_encoder=EncodecConfig(**encodec_kwargs), decoder=decoder
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(config).eval()
        # transformers' init (std 0.02) leaves the text condition with almost no say in the logits; a
        # fan-in init makes every layer matter, so prompts and guidance change the greedy codes
        for module in (model.decoder, getattr(model, "enc_to_dec_proj", None)):
            for param in module.parameters() if module is not None else ():
                if param.dim() == 2:
                    torch.nn.init.normal_(param, std=param.shape[-1] ** -0.5)
    # transformers leaves the RVQ codebooks at zero; take seeded, spread-out ones so decoded audio varies
    codec = EncodecCodec.from_config(encodec_kwargs, seed=seed)
    model.audio_encoder.load_state_dict(codec.model.state_dict())
    model.generation_config.max_length = MAX_LENGTH
    model.generation_config.decoder_start_token_id = CARD
    model.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(t5_dir)
    MusicgenProcessor(EncodecFeatureExtractor(feature_size=1, sampling_rate=16000), tokenizer).save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def hf_musicgen(tmp_path_factory: pytest.TempPathFactory, tiny_t5_dir: Path):
    """(transformers model, its saved folder); the text encoder (32) is narrower than the decoder (48)."""
    folder = tmp_path_factory.mktemp("musicgen_hf")
    return save_tiny_musicgen(folder, tiny_t5_dir), folder


@pytest.fixture(scope="module")
def backend(hf_musicgen) -> LMBackend:
    return load_musicgen_hf(hf_musicgen[1])


def _teacher_forced(model, backend: LMBackend, inputs: dict, null: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[B, K, S, card]`` of transformers and tokenlm on the same delay-pattern sequence of random codes."""
    batch, frames = inputs["input_ids"].shape[0], 9
    codes = torch.randint(0, CARD, (batch, K, frames), generator=torch.Generator().manual_seed(1))  # [B, K, T]
    sequence = build_pattern("delay", K, frames).build(codes, CARD)  # [B, K, S], S = T + K
    steps = sequence.shape[-1]
    attributes = [{"description": text} for text in PROMPTS]
    with torch.no_grad():
        if null:  # what transformers' generate() feeds the unconditional half under guidance
            hidden = model.text_encoder(**inputs).last_hidden_state
            hf_inputs = {"encoder_outputs": (torch.zeros_like(hidden),), "attention_mask": torch.zeros_like(
                inputs["attention_mask"])}
        else:
            hf_inputs = dict(inputs)
        hf = model(**hf_inputs, decoder_input_ids=sequence.reshape(batch * K, steps)).logits
        condition = backend.conditioning.encode(attributes, null=null).cross  # [B, S_text, D]
        ours = backend.lm(sequence, backend.lm.cross_context(condition.embeds, condition.mask))
    return hf.view(batch, K, steps, CARD), ours


def test_teacher_forced_logits_match_transformers(hf_musicgen, backend: LMBackend) -> None:
    model, folder = hf_musicgen
    inputs = dict(AutoTokenizer.from_pretrained(folder)(PROMPTS, padding=True, return_tensors="pt"))
    assert inputs["attention_mask"][0].sum() < inputs["attention_mask"][1].sum()  # padding is exercised
    hf_text, ours_text = _teacher_forced(model, backend, inputs, null=False)
    hf_null, ours_null = _teacher_forced(model, backend, inputs, null=True)
    assert ours_text.shape == hf_text.shape == (2, K, 9 + K, CARD)
    assert (ours_text - hf_text).abs().max().item() < 1e-4
    assert (ours_null - hf_null).abs().max().item() < 1e-4
    assert hf_text.std() > 0.5 and (hf_text - hf_null).abs().max() > 0.5  # the text condition matters


def test_no_projection_when_widths_match(tmp_path: Path, tiny_t5_dir: Path) -> None:
    model = save_tiny_musicgen(tmp_path, tiny_t5_dir, hidden=32)  # T5 d_model is 32 too: no enc_to_dec_proj
    backend = load_musicgen_hf(tmp_path)
    assert isinstance(backend.conditioning.conditioners["description"].output_proj, torch.nn.Identity)
    inputs = dict(AutoTokenizer.from_pretrained(tmp_path)(PROMPTS, padding=True, return_tensors="pt"))
    hf, ours = _teacher_forced(model, backend, inputs, null=False)
    assert (ours - hf).abs().max().item() < 1e-4


def test_config_mapping(backend: LMBackend) -> None:
    cfg = backend.lm.config
    assert (cfg.num_codebooks, cfg.cardinality, cfg.dim, cfg.num_layers, cfg.num_heads, cfg.ffn_dim) == (
        K, CARD, 48, 2, 4, 96
    )
    assert (cfg.bias_attn, cfg.bias_ffn, cfg.positional, cfg.norm_eps, cfg.cross_attention_mask) == (
        False, False, "sin", 1e-5, True
    )
    assert backend.pattern_kind == "delay" and backend.cfg_dropout == 0.1
    assert backend.max_duration == pytest.approx(MAX_LENGTH / FRAME_RATE)
    assert (backend.codec.num_codebooks, backend.codec.cardinality, backend.frame_rate) == (K, CARD, FRAME_RATE)


@pytest.mark.parametrize("guidance", [3.0, 1.0])
def test_greedy_generation_matches_transformers(
    hf_musicgen, backend: LMBackend, monkeypatch: pytest.MonkeyPatch, guidance: float
) -> None:
    model, folder = hf_musicgen
    decoded = []  # transformers decodes the codes itself; catch them on the way to EnCodec
    decode = model.audio_encoder.decode

    def spy(audio_codes: torch.Tensor, *args, **kwargs):
        decoded.append(audio_codes)
        return decode(audio_codes, *args, **kwargs)

    monkeypatch.setattr(model.audio_encoder, "decode", spy)
    new_tokens = 16
    frames = new_tokens + 1 - K  # delay pattern: the last K - 1 steps only finish the delayed codebooks
    inputs = AutoTokenizer.from_pretrained(folder)(PROMPTS, padding=True, return_tensors="pt")
    wav = model.generate(**inputs, do_sample=False, guidance_scale=guidance, max_new_tokens=new_tokens)
    hf_codes = decoded[0][0]  # [1, B, K, T] -> [B, K, T]
    assert hf_codes.shape == (2, K, frames)

    duration = (frames - 0.5) / FRAME_RATE  # ceil(duration * frame rate) == frames
    params = SamplingParams(temperature=0, cfg_coef=guidance)
    codes = backend.generate_tokens([{"description": text} for text in PROMPTS], duration, params)
    assert torch.equal(codes, hf_codes)
    assert not torch.equal(codes[0], codes[1])  # the prompts steer the codes
    if guidance != 1:
        unguided = backend.generate_tokens(
            [{"description": text} for text in PROMPTS], duration, SamplingParams(temperature=0, cfg_coef=1)
        )
        assert not torch.equal(codes, unguided)  # and so does guidance
    torch.testing.assert_close(backend.decode(codes), wav, atol=1e-5, rtol=1e-4)


def test_convert_then_load_gives_the_same_model(hf_musicgen, tmp_path: Path) -> None:
    _, folder = hf_musicgen
    destination = convert_musicgen_hf(folder, tmp_path / "converted")
    config = json.loads((destination / "config.json").read_text())
    assert config["format"] == "tokenlm" and config["backend"] == "lm"
    direct, converted = TextToAudio.from_pretrained(folder), TextToAudio.from_pretrained(destination)
    direct_state, converted_state = direct.backend.state_dict(), converted.backend.state_dict()
    assert direct_state.keys() == converted_state.keys()
    assert all(torch.equal(direct_state[name], converted_state[name]) for name in direct_state)
    a = direct.generate(PROMPTS, 0.3, seed=0, return_codes=True)  # sampled: top-k 250, CFG 3
    b = converted.generate(PROMPTS, 0.3, seed=0, return_codes=True)
    assert torch.equal(a.codes, b.codes)
    torch.testing.assert_close(a.wav, b.wav)
    with pytest.raises(ValueError, match="the MusicGen folder itself"):
        convert_musicgen_hf(folder, folder)


@pytest.mark.parametrize("layout", ["legacy-sharded-safetensors", "pytorch-bin"])
def test_other_weight_layouts(hf_musicgen, backend: LMBackend, tmp_path: Path, layout: str) -> None:
    """Hub checkpoints keep EnCodec's weight norm as ``weight_g`` / ``weight_v`` and may be sharded or pickled."""
    _, folder = hf_musicgen
    for item in folder.iterdir():
        if item.name != "model.safetensors":
            shutil.copy(item, tmp_path / item.name)
    state = load_file(folder / "model.safetensors")
    if layout == "pytorch-bin":
        torch.save(state, tmp_path / "pytorch_model.bin")
    else:
        legacy = {
            name.replace(".parametrizations.weight.original0", ".weight_g").replace(
                ".parametrizations.weight.original1", ".weight_v"
            ): tensor
            for name, tensor in state.items()
        }
        names = sorted(legacy)
        shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
        for shard, members in shards.items():
            save_file({name: legacy[name].contiguous() for name in members}, tmp_path / shard)
        weight_map = {name: shard for shard, members in shards.items() for name in members}
        (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    loaded = load_musicgen_hf(tmp_path).state_dict()
    reference = backend.state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[name], reference[name]) for name in reference)


def _copy_with_config(folder: Path, target: Path, edit) -> Path:
    """``folder`` copied to ``target`` with ``edit(config_dict)`` applied to its config.json."""
    shutil.copytree(folder, target)
    config = json.loads((target / "config.json").read_text())
    edit(config)
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_clear_errors(hf_musicgen, tmp_path: Path, tiny_t5_dir: Path) -> None:
    _, folder = hf_musicgen

    def stereo(config: dict) -> None:  # a mono checkpoint that claims to be stereo: its codec gives K, not K / 2
        config["decoder"].update(audio_channels=2)

    with pytest.raises(ValueError, match=f"gives the {K // 2} codebooks the MusicGen decoder predicts per channel"):
        load_musicgen_hf(_copy_with_config(folder, tmp_path / "stereo", stereo))
    with pytest.raises(ValueError, match="audio_channels must be 1 .* or 2"):
        load_musicgen_hf(_copy_with_config(folder, tmp_path / "surround",
                                           lambda config: config["decoder"].update(audio_channels=6)))
    melody = _copy_with_config(folder, tmp_path / "melody", lambda config: config.update(model_type="musicgen_melody"))
    with pytest.raises(ValueError, match="no audio_enc_to_dec_proj"):  # a text-only checkpoint has no chroma route
        load_musicgen_hf(melody)
    with pytest.raises(ValueError, match="'t5' model, not a MusicGen"):
        load_musicgen_hf(tiny_t5_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        load_musicgen_hf(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_musicgen_hf(tmp_path / "missing")

    no_tokenizer = tmp_path / "no_tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(folder / name, no_tokenizer / name)
    with pytest.raises(ValueError, match="has no tokenizer"):
        load_musicgen_hf(no_tokenizer)

    no_weights = tmp_path / "no_weights"
    shutil.copytree(folder, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="has no MusicGen weights"):
        load_musicgen_hf(no_weights)
    (no_weights / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="cannot read the MusicGen weights"):
        load_musicgen_hf(no_weights)

    def wider(config: dict) -> None:
        config["decoder"]["ffn_dim"] = 128

    with pytest.raises(ValueError, match="decoder weights do not match"):
        load_musicgen_hf(_copy_with_config(folder, tmp_path / "wider", wider))

"""audiocraft 1.3.0 LM checkpoints converted by tokenlm give audiocraft's logits and greedy CFG codes.

Tiny random audiocraft ``LMModel``s are built with audiocraft's own builders from an ``xp.cfg`` (cross-attention
T5 and look-up-table conditioners, sinusoidal and rotary positions, custom and torch attention, with and without
biases, delay and parallel patterns), exported the way ``audiocraft.utils.export`` does, and loaded with
:func:`tokenlm.convert.audiocraft_lm.load_audiocraft`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tokenlm.convert.audiocraft_lm import convert_audiocraft, load_audiocraft
from tokenlm.lm.patterns import build_pattern
from tokenlm.lm.sampling import SamplingParams

CARD, N_Q, DIM = 128, 4, 32
ATTRIBUTES = [
    {"description": "a calm piano melody over soft rain", "genre": "ambient"},
    {"description": "drums", "genre": None},
    {"description": "a distorted electric guitar riff with heavy drums and bass", "genre": "metal"},
]


def audiocraft_cfg(
    t5_name: str,
    *,
    positional: str = "sin",
    custom: bool = True,
    bias: bool = False,
    modeling: str = "delay",
    genre_route: str | None = "cross",
    memory_efficient: bool = False,
    bias_proj: bool = False,
    card: int = CARD,
) -> OmegaConf:
    """An ``xp.cfg`` shaped like MusicGen's (config/model/lm/musicgen_lm.yaml), at a tiny scale."""
    fuser = {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1, "sum": [], "prepend": [],
             "cross": ["description"], "input_interpolate": []}
    conditioners = {
        "description": {"model": "t5", "t5": {"name": t5_name, "finetune": False, "word_dropout": 0.0,
                                              "normalize_text": False}},
    }
    if genre_route is not None:
        fuser[genre_route].append("genre")
        conditioners["genre"] = {"model": "lut", "lut": {"n_bins": 64, "dim": 16, "tokenizer": "noop"}}
    return OmegaConf.create({
        "device": "cpu",
        "dtype": "float32",
        "lm_model": "transformer_lm",
        "codebooks_pattern": {
            "modeling": modeling,
            "delay": {"delays": list(range(N_Q)), "flatten_first": 0, "empty_initial": 0},
        },
        "transformer_lm": {
            "dim": DIM, "num_heads": 4, "num_layers": 2, "hidden_scale": 4, "n_q": N_Q, "card": card,
            "dropout": 0.0, "emb_lr": None, "activation": "gelu", "norm_first": True, "bias_ff": bias,
            "bias_attn": bias, "bias_proj": bias_proj, "past_context": None, "causal": True, "custom": custom,
            "memory_efficient": memory_efficient, "attention_as_float32": False, "layer_scale": None,
            "positional_embedding": positional, "xpos": False, "checkpointing": "none", "weight_init": "gaussian",
            "depthwise_init": "current", "zero_bias_init": True, "norm": "layer_norm", "cross_attention": False,
            "qk_layer_norm": False, "qk_layer_norm_cross": False, "attention_dropout": None, "kv_repeat": 1,
            "two_step_cfg": False,
        },
        "classifier_free_guidance": {"training_dropout": 0.1, "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": fuser,
        "conditioners": conditioners,
        "dataset": {"segment_duration": 2.0},
    })


@pytest.fixture
def audiocraft_t5(tiny_t5_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny local T5 registered in audiocraft's list of T5 names (it only loads names from that list)."""
    from audiocraft.modules.conditioners import T5Conditioner

    name = str(tiny_t5_dir)
    monkeypatch.setattr(T5Conditioner, "MODELS", [*T5Conditioner.MODELS, name])
    monkeypatch.setattr(T5Conditioner, "MODELS_DIMS", {**T5Conditioner.MODELS_DIMS, name: 32})
    return name


@pytest.fixture
def codec_dir(tiny_encodec_dir: Path) -> Path:
    """The tiny EnCodec folder (CARD codes x N_Q codebooks) that ``{"pretrained": ...}`` stands for."""
    return tiny_encodec_dir


def export_audiocraft(
    cfg: OmegaConf, folder: Path, seed: int = 0, compression: dict | None = None
) -> torch.nn.Module:
    """Build audiocraft's LM from ``cfg``, randomise every parameter, export it like a release; return the LM.

    ``compression`` is the compression package to write (default: ``{"pretrained": "facebook/encodec_32khz"}``).
    """
    from audiocraft.models import builders

    torch.manual_seed(seed)
    lm = builders.get_lm_model(cfg).eval()
    with torch.no_grad():
        for param in lm.parameters():  # biases and norms too, so every mapping is exercised
            param.add_(0.1 * torch.randn_like(param))
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"xp.cfg": OmegaConf.to_yaml(cfg), "best_state": lm.state_dict(), "version": "1.3.0",
                "exported": True}, folder / "state_dict.bin")
    compression = compression or {"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.3.0"}
    torch.save(compression, folder / "compression_state_dict.bin")
    return lm


def _audiocraft_attributes(attributes: list[dict]) -> list:
    from audiocraft.modules.conditioners import ConditioningAttributes

    return [ConditioningAttributes(text=dict(a)) for a in attributes]


VARIANTS = {
    "musicgen": dict(),  # sin positions, custom attention, no biases, delay pattern, T5 + LUT cross-attention
    "rope_bias": dict(positional="rope", bias=True),
    "sin_rope_head_bias": dict(positional="sin_rope", bias_proj=True),
    "torch_mha_parallel_sum": dict(custom=False, bias=True, modeling="parallel", genre_route="sum"),
    "rope_memory_efficient": dict(positional="rope", memory_efficient=True),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_teacher_forced_logits_match(variant: str, audiocraft_t5: str, codec_dir: Path, tmp_path: Path) -> None:
    cfg = audiocraft_cfg(audiocraft_t5, **VARIANTS[variant])
    reference = export_audiocraft(cfg, tmp_path / "ac")
    backend = load_audiocraft(tmp_path / "ac", t5=audiocraft_t5, encodec=codec_dir)

    torch.manual_seed(1)
    codes = torch.randint(0, CARD, (len(ATTRIBUTES), N_Q, 24))  # [B, K, T]
    pattern = build_pattern(backend.pattern_kind, N_Q, 24, backend.delays)
    sequence = pattern.build(codes, CARD)  # [B, K, S]
    with torch.no_grad():
        provider = reference.condition_provider
        tensors = provider(provider.tokenize(_audiocraft_attributes(ATTRIBUTES)))
        expected = reference(sequence, [], condition_tensors=tensors)  # [B, K, S, card]
        context = backend.lm.condition_context(backend.conditioning.encode(ATTRIBUTES))
        logits = backend.lm(sequence, context)
    assert logits.shape == expected.shape == (len(ATTRIBUTES), N_Q, sequence.shape[-1], CARD)
    assert (logits - expected).abs().max().item() < 1e-4
    # the padded captions change the logits in audiocraft (no cross-attention mask); tokenlm follows it
    with torch.no_grad():
        alone = backend.lm(sequence[1:2], backend.lm.condition_context(backend.conditioning.encode(ATTRIBUTES[1:2])))
    assert (alone - logits[1:2]).abs().max().item() > 1e-3


@pytest.mark.parametrize("variant", ["musicgen", "rope_bias", "sin_rope_head_bias"])
def test_greedy_cfg_codes_match(variant: str, audiocraft_t5: str, codec_dir: Path, tmp_path: Path) -> None:
    cfg = audiocraft_cfg(audiocraft_t5, **VARIANTS[variant])
    reference = export_audiocraft(cfg, tmp_path / "ac", seed=3)
    backend = load_audiocraft(tmp_path / "ac", t5=audiocraft_t5, encodec=codec_dir)
    frames = 30
    with torch.no_grad():
        expected = reference.generate(
            None, _audiocraft_attributes(ATTRIBUTES), max_gen_len=frames, use_sampling=False, cfg_coef=3.0
        )  # [B, K, T]
    duration = frames / backend.frame_rate
    codes = backend.generate_tokens(ATTRIBUTES, duration, SamplingParams(temperature=0.0, cfg_coef=3.0))
    assert codes.shape == expected.shape == (len(ATTRIBUTES), N_Q, frames)
    assert torch.equal(codes, expected) and codes.unique().numel() > 8  # not a degenerate model


def test_converted_folder_reloads_with_the_same_logits(audiocraft_t5: str, codec_dir: Path, tmp_path: Path) -> None:
    from tokenlm.api import TextToAudio

    export_audiocraft(audiocraft_cfg(audiocraft_t5), tmp_path / "ac")
    direct = load_audiocraft(tmp_path / "ac", t5=audiocraft_t5, encodec=codec_dir)
    convert_audiocraft(tmp_path / "ac", tmp_path / "converted", t5=audiocraft_t5, encodec=codec_dir)
    reloaded = TextToAudio.from_pretrained(tmp_path / "converted", dtype="float32").backend  # exact, as loaded
    assert reloaded.lm.config == direct.lm.config
    sequence = torch.randint(0, CARD, (len(ATTRIBUTES), N_Q, 10))
    with torch.no_grad():
        a = direct.lm(sequence, direct.lm.condition_context(direct.conditioning.encode(ATTRIBUTES)))
        b = reloaded.lm(sequence, reloaded.lm.condition_context(reloaded.conditioning.encode(ATTRIBUTES)))
    assert torch.equal(a, b)


def test_rope_generation_follows_the_non_streaming_model(audiocraft_t5: str, codec_dir: Path, tmp_path: Path) -> None:
    """audiocraft 1.3.0 with ``memory_efficient=True`` rotates cached steps at a wrong offset while generating;
    tokenlm's greedy codes are instead the argmax of audiocraft's own full-sequence (teacher-forced) CFG logits."""
    cfg = audiocraft_cfg(audiocraft_t5, positional="rope", memory_efficient=True)
    reference = export_audiocraft(cfg, tmp_path / "ac", seed=5)
    backend = load_audiocraft(tmp_path / "ac", t5=audiocraft_t5, encodec=codec_dir)
    frames, cfg_coef = 20, 3.0
    codes = backend.generate_tokens(
        ATTRIBUTES, frames / backend.frame_rate, SamplingParams(temperature=0.0, cfg_coef=cfg_coef)
    )  # [B, K, T]
    pattern = build_pattern("delay", N_Q, frames)
    sequence = pattern.build(codes, CARD)  # [B, K, S]
    null = [{name: None for name in a} for a in ATTRIBUTES]
    with torch.no_grad():
        provider = reference.condition_provider
        tensors = provider(provider.tokenize(_audiocraft_attributes(ATTRIBUTES + null)))
        logits = reference(sequence.repeat(2, 1, 1), [], condition_tensors=tensors)  # [2B, K, S, card]
    cond, uncond = logits.chunk(2)
    guided = uncond + (cond - uncond) * cfg_coef  # [B, K, S, card]
    expected = pattern.revert_logits(guided[:, :, :-1]).argmax(-1)  # position s predicts step s + 1
    assert torch.equal(codes, expected)


def test_audiogen_release_end_to_end_audio_matches(audiocraft_t5: str, tmp_path: Path) -> None:
    """An AudioGen-style release (T5 description, delay pattern, its own 16 kHz audiocraft EnCodec saved in full):
    audiocraft's ``AudioGen.generate`` and tokenlm's ``TextToAudio.generate`` give the same codes and audio."""
    from audiocraft.models import AudioGen

    from compat.test_encodec_parity import audiocraft_cfg as encodec_cfg
    from compat.test_encodec_parity import audiocraft_model as encodec_model
    from tokenlm.api import TextToAudio

    codec_cfg = encodec_cfg()
    compression_model = encodec_model(codec_cfg, seed=4)
    compression = {"xp.cfg": OmegaConf.to_yaml(codec_cfg), "best_state": compression_model.state_dict(),
                   "version": "1.3.0", "exported": True}
    lm_cfg = audiocraft_cfg(audiocraft_t5, genre_route=None, card=int(codec_cfg.rvq.bins))
    lm = export_audiocraft(lm_cfg, tmp_path / "audiogen", seed=6, compression=compression)
    reference = AudioGen("tiny-audiogen", compression_model, lm, max_duration=4.0)  # its constructor strides 2 s
    reference.set_generation_params(use_sampling=False, duration=0.4, cfg_coef=3.0, extend_stride=1.0)
    prompts = ["a dog barks twice", "heavy rain on a tin roof with distant thunder"]
    with torch.no_grad():
        expected_wav, expected_codes = reference.generate(prompts, return_tokens=True)  # [B, 1, N], [B, K, T]

    model = TextToAudio(load_audiocraft(tmp_path / "audiogen", t5=audiocraft_t5))
    audio = model.generate(prompts, duration=0.4, temperature=0.0, cfg_coef=3.0, return_codes=True)
    assert model.sample_rate == reference.sample_rate == 16000
    assert torch.equal(audio.codes, expected_codes) and audio.codes.unique().numel() > 8  # not a degenerate model
    assert audio.wav.shape == expected_wav.shape == (2, 1, 6400)
    assert (audio.wav - expected_wav).abs().max().item() < 1e-5

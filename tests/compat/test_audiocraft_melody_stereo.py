"""audiocraft 1.3.0 MusicGen-Melody and stereo MusicGen checkpoints converted by tokenlm give audiocraft's outputs.

Tiny random audiocraft ``LMModel``s are built by audiocraft's own builders from an ``xp.cfg`` shaped like the
releases' (config/conditioner/chroma2music.yaml: a ``chroma_stem`` melody and a T5 description, both prepended;
stereo: ``interleave_stereo_codebooks`` with interleaved delays), exported, and loaded with
:func:`tokenlm.convert.audiocraft_lm.load_audiocraft`. Logits are compared teacher-forced, greedy CFG codes against
audiocraft's ``LMModel.generate`` and, end to end, audio against ``MusicGen.generate_with_chroma`` / ``generate``.

audiocraft's melody conditioner separates stems with Demucs, whose weights are not available offline: the
``no_demucs`` fixture makes it take the whole mix (what the converted model does), and its LMs are switched to
``match_len_on_eval`` with no length mask, as ``MusicGen.get_pretrained`` does for every melody model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from compat.test_audiocraft_parity import audiocraft_cfg, export_audiocraft
from conditioners.base import AudioValue
from conditioners.chroma import ChromaConditioner
from tokenlm.codecs.stereo import StereoEncodecCodec
from tokenlm.convert.audiocraft_lm import load_audiocraft
from tokenlm.lm.patterns import build_pattern
from tokenlm.lm.sampling import SamplingParams

CARD, N_Q, RATE = 128, 4, 16000  # the tiny EnCodec's codes, codebooks and rate (the chroma's rate too)
SEGMENT = 2.0  # training window: the chroma always has 1 + 2 s * 16000 / 1024 = 32 frames (radix2_exp 12)
DESCRIPTIONS = ["a calm piano melody over soft rain", "drums", None]


def tune(seconds: float, start_hz: float, seed: int, rate: int = RATE) -> torch.Tensor:
    """``[1, N]`` two alternating notes (a fifth apart, two a second) with a little noise."""
    t = torch.arange(int(seconds * rate)) / rate
    freq = start_hz * torch.where(torch.floor(t * 2) % 2 == 0, 1.0, 1.5)
    noise = 0.02 * torch.randn(t.shape, generator=torch.Generator().manual_seed(seed))
    return (0.5 * torch.sin(2 * torch.pi * freq * t) + noise)[None]


#: melodies per batch row (None: no melody): one longer than the window, one shorter than an STFT window
MELODIES = [tune(2.6, 261.6, 0), None, tune(0.2, 392.0, 1)]


@pytest.fixture
def audiocraft_t5(tiny_t5_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny local T5 registered in audiocraft's list of T5 names (it only loads names from that list)."""
    from audiocraft.modules.conditioners import T5Conditioner

    name = str(tiny_t5_dir)
    monkeypatch.setattr(T5Conditioner, "MODELS", [*T5Conditioner.MODELS, name])
    monkeypatch.setattr(T5Conditioner, "MODELS_DIMS", {**T5Conditioner.MODELS_DIMS, name: 32})
    return name


class _NoDemucs:
    """Stands for the htdemucs model ``ChromaStemConditioner`` loads (it only reads its stem names)."""

    sources = ["drums", "bass", "other", "vocals"]
    samplerate, audio_channels = 44100, 2

    def to(self, device: Any) -> _NoDemucs:
        return self


@pytest.fixture
def no_demucs(monkeypatch: pytest.MonkeyPatch) -> None:
    """audiocraft's chroma conditioner without Demucs: no weights loaded, the melody stems are the whole mix."""
    import demucs.pretrained
    from audiocraft.data.audio_utils import convert_audio
    from audiocraft.modules.conditioners import ChromaStemConditioner

    def whole_mix(self: ChromaStemConditioner, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return convert_audio(wav, sample_rate, self.sample_rate, 1)  # [B, 1, N] at the chroma's rate

    monkeypatch.setattr(demucs.pretrained, "get_model", lambda name: _NoDemucs())
    monkeypatch.setattr(ChromaStemConditioner, "_get_stemmed_wav", whole_mix)


def melody_cfg(
    t5_name: str,
    *,
    match_len_on_eval: bool = False,
    argmax: bool = True,
    genre: bool = False,
    **options: Any,
) -> OmegaConf:
    """MusicGen-Melody's ``xp.cfg`` at a tiny scale: chroma (``self_wav``) and T5 description prepended, no
    cross-attention, biases everywhere (``options`` go to :func:`audiocraft_cfg`)."""
    cfg = audiocraft_cfg(t5_name, genre_route=None, bias=True, bias_proj=True, **options)
    cfg.sample_rate = RATE
    cfg.dataset.segment_duration = SEGMENT
    cfg.classifier_free_guidance.training_dropout = 0.2
    chroma = {"sample_rate": "${sample_rate}", "n_chroma": 12, "radix2_exp": 12, "argmax": argmax,
              "match_len_on_eval": match_len_on_eval, "eval_wavs": None, "n_eval_wavs": 100, "cache_path": None}
    conditioners = {"self_wav": {"model": "chroma_stem", "chroma_stem": chroma}, **cfg.conditioners}
    prepend = ["self_wav", "description"]
    if genre:  # a look-up table prepended too: after the T5 in audiocraft's walk, so in front of it
        conditioners["genre"] = {"model": "lut", "lut": {"n_bins": 64, "dim": 16, "tokenizer": "noop"}}
        prepend.append("genre")
    cfg.conditioners = conditioners
    cfg.fuser.cross, cfg.fuser.prepend = [], prepend
    return cfg


def stereo_cfg(t5_name: str, card: int = CARD, **options: Any) -> OmegaConf:
    """Stereo MusicGen's ``xp.cfg`` at a tiny scale: 2 x 4 interleaved codebooks, pairs delayed together."""
    cfg = audiocraft_cfg(t5_name, card=card, bias=True, bias_proj=True, **options)
    cfg.transformer_lm.n_q = 2 * N_Q
    cfg.codebooks_pattern.delay.delays = [k // 2 for k in range(2 * N_Q)]
    cfg.interleave_stereo_codebooks = {"use": True, "per_timestep": False}
    cfg.compression_model_n_q = N_Q
    return cfg


def as_pretrained(lm: torch.nn.Module) -> torch.nn.Module:
    """What ``MusicGen.get_pretrained`` does to every melody LM: chroma always of the window's length, unmasked."""
    chroma = lm.condition_provider.conditioners["self_wav"]
    chroma.match_len_on_eval, chroma._use_masking = True, False
    return lm


def audiocraft_attributes(descriptions: list, melodies: list | None, genres: list | None = None) -> list:
    """audiocraft conditions; with ``melodies``, a missing melody is the zero-length waveform MusicGen gives."""
    from audiocraft.modules.conditioners import ConditioningAttributes, WavCondition

    out = []
    for i, description in enumerate(descriptions):
        text = {"description": description, **({"genre": genres[i]} if genres else {})}
        attributes = ConditioningAttributes(text=text)
        if melodies is not None:
            melody = melodies[i]
            wav = torch.zeros(1, 1, 1) if melody is None else melody[None]
            length = torch.tensor([0 if melody is None else melody.shape[-1]])
            attributes.wav["self_wav"] = WavCondition(wav, length, sample_rate=[RATE], path=[None])
        out.append(attributes)
    return out


def tokenlm_attributes(descriptions: list, melodies: list | None, genres: list | None = None) -> list[dict]:
    out = []
    for i, description in enumerate(descriptions):
        item: dict[str, Any] = {"description": description, **({"genre": genres[i]} if genres else {})}
        if melodies is not None and melodies[i] is not None:
            item["melody"] = AudioValue(melodies[i], RATE)
        out.append(item)
    return out


def teacher_forced(reference: torch.nn.Module, backend: Any, ours: list[dict], theirs: list, seed: int = 1):
    """audiocraft's and tokenlm's logits ``[B, K, S, card]`` on the same random pattern sequence."""
    torch.manual_seed(seed)
    K = backend.lm.config.num_codebooks
    codes = torch.randint(0, backend.lm.config.cardinality, (len(ours), K, 20))  # [B, K, T]
    sequence = build_pattern(backend.pattern_kind, K, 20, backend.delays).build(codes, backend.lm.config.cardinality)
    with torch.no_grad():
        provider = reference.condition_provider
        expected = reference(sequence, [], condition_tensors=provider(provider.tokenize(theirs)))
        logits = backend.lm(sequence, backend.lm.condition_context(backend.conditioning.encode(ours)))
    return logits, expected


MELODY_VARIANTS = {
    "melody": dict(),  # as released: sin positions, custom attention, match_len_on_eval off in xp.cfg
    "rope_lut": dict(positional="rope", genre=True, match_len_on_eval=True),  # a LUT prepended too
    "torch_mha": dict(custom=False),
    "no_argmax": dict(argmax=False),  # the normalised chroma; "no melody" is then all-zero chroma
}


@pytest.mark.parametrize("variant", sorted(MELODY_VARIANTS))
def test_melody_teacher_forced_logits_match(
    variant: str, audiocraft_t5: str, no_demucs: None, tiny_encodec_dir: Path, tmp_path: Path
) -> None:
    options = MELODY_VARIANTS[variant]
    reference = as_pretrained(export_audiocraft(melody_cfg(audiocraft_t5, **options), tmp_path / "ac"))
    backend = load_audiocraft(tmp_path / "ac", t5=audiocraft_t5, encodec=tiny_encodec_dir)
    assert backend.lm.config.cross_attention is False and backend.lm.config.prefix_positions == "shared"
    assert backend.lm.config.prefix_padding == "attended"
    chroma = backend.conditioning.conditioners["melody"]
    assert isinstance(chroma, ChromaConditioner) and chroma.chroma_length == 32
    genres = ["ambient", None, "metal"] if options.get("genre") else None
    ours = []
    for melodies in (MELODIES, [None] * 3):
        logits, expected = teacher_forced(
            reference, backend, tokenlm_attributes(DESCRIPTIONS, melodies, genres),
            audiocraft_attributes(DESCRIPTIONS, melodies, genres),
        )
        assert logits.shape == expected.shape == (3, N_Q, 24, CARD)
        assert (logits - expected).abs().max().item() < 1e-4
        ours.append(logits)
    assert (ours[0] - ours[1]).abs().max().item() > 1e-2  # the melody changes the logits


@pytest.mark.parametrize("with_melody", [True, False], ids=["melody", "no-melody"])
def test_melody_greedy_cfg_codes_match(
    with_melody: bool, audiocraft_t5: str, no_demucs: None, tiny_encodec_dir: Path, tmp_path: Path
) -> None:
    reference = as_pretrained(export_audiocraft(melody_cfg(audiocraft_t5), tmp_path / "ac", seed=3))
    backend = load_audiocraft(tmp_path / "ac", t5=audiocraft_t5, encodec=tiny_encodec_dir)
    melodies = MELODIES if with_melody else [None] * 3
    frames = 30
    with torch.no_grad():
        expected = reference.generate(
            None, audiocraft_attributes(DESCRIPTIONS, melodies), max_gen_len=frames, use_sampling=False, cfg_coef=3.0
        )  # [B, K, T]
    params = SamplingParams(temperature=0.0, cfg_coef=3.0)
    codes = backend.generate_tokens(tokenlm_attributes(DESCRIPTIONS, melodies), frames / backend.frame_rate, params)
    assert codes.shape == expected.shape == (3, N_Q, frames)
    assert (codes - expected).abs().max().item() == 0 and codes.unique().numel() > 8  # not a degenerate model
    if with_melody:  # the melody changes the codes
        without = backend.generate_tokens(tokenlm_attributes(DESCRIPTIONS, None), frames / backend.frame_rate, params)
        assert not torch.equal(codes, without)


def test_stereo_logits_and_greedy_cfg_codes_match(audiocraft_t5: str, tiny_encodec_dir: Path, tmp_path: Path) -> None:
    from audiocraft.modules.conditioners import ConditioningAttributes

    reference = export_audiocraft(stereo_cfg(audiocraft_t5), tmp_path / "ac", seed=7)
    backend = load_audiocraft(tmp_path / "ac", t5=audiocraft_t5, encodec=tiny_encodec_dir)
    assert isinstance(backend.codec, StereoEncodecCodec) and backend.codec.channels == 2
    assert backend.codec.num_codebooks == 2 * N_Q and backend.delays == [0, 0, 1, 1, 2, 2, 3, 3]
    prompts = [{"description": d, "genre": g} for d, g in zip(DESCRIPTIONS, ["ambient", None, "metal"], strict=True)]
    theirs = [ConditioningAttributes(text=dict(p)) for p in prompts]
    logits, expected = teacher_forced(reference, backend, prompts, theirs)
    assert logits.shape == expected.shape == (3, 2 * N_Q, 24, CARD)
    assert (logits - expected).abs().max().item() < 1e-4

    frames = 30
    with torch.no_grad():
        expected = reference.generate(None, theirs, max_gen_len=frames, use_sampling=False, cfg_coef=3.0)
    codes = backend.generate_tokens(prompts, frames / backend.frame_rate, SamplingParams(temperature=0.0, cfg_coef=3.0))
    assert codes.shape == expected.shape == (3, 2 * N_Q, frames)
    assert (codes - expected).abs().max().item() == 0 and codes.unique().numel() > 8


def _release_with_codec(lm_cfg: OmegaConf, folder: Path, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """An audiocraft LM exported with a full (tiny, 16 kHz) audiocraft EnCodec package; returns (codec, LM)."""
    from compat.test_encodec_parity import audiocraft_cfg as encodec_cfg
    from compat.test_encodec_parity import audiocraft_model as encodec_model

    codec_cfg = encodec_cfg()
    codec = encodec_model(codec_cfg, seed=4)
    compression = {"xp.cfg": OmegaConf.to_yaml(codec_cfg), "best_state": codec.state_dict(), "version": "1.3.0",
                   "exported": True}
    lm = export_audiocraft(lm_cfg, folder, seed=seed, compression=compression)
    lm.cfg = lm_cfg  # as audiocraft's loader sets it: MusicGen wraps the codec as the config says
    return codec, lm


def test_melody_release_end_to_end_audio_matches(audiocraft_t5: str, no_demucs: None, tmp_path: Path) -> None:
    """``MusicGen.generate_with_chroma`` (melodies of two lengths at another rate) and ``TextToAudio.generate``
    with ``melody=`` give the same codes and audio."""
    from audiocraft.models import MusicGen

    from tokenlm.api import TextToAudio

    codec, lm = _release_with_codec(melody_cfg(audiocraft_t5, card=64), tmp_path / "melody", seed=8)
    reference = MusicGen("tiny-melody", codec, as_pretrained(lm), max_duration=20.0)  # its stride default is 18 s
    reference.set_generation_params(use_sampling=False, duration=0.4, cfg_coef=3.0)
    prompts, rate = ["a dog barks twice", "heavy rain on a tin roof with distant thunder"], 22050
    melodies = [tune(0.35, 330.0, 5, rate=rate), tune(0.25, 440.0, 6, rate=rate)]
    with torch.no_grad():
        expected_wav, expected_codes = reference.generate_with_chroma(prompts, melodies, rate, return_tokens=True)

    model = TextToAudio(load_audiocraft(tmp_path / "melody", t5=audiocraft_t5))
    audio = model.generate(prompts, duration=0.4, temperature=0.0, cfg_coef=3.0, return_codes=True,
                           melody=melodies, melody_sample_rate=rate)
    assert (audio.codes - expected_codes).abs().max().item() == 0 and audio.codes.unique().numel() > 8
    assert audio.wav.shape == expected_wav.shape == (2, 1, 6400)
    assert (audio.wav - expected_wav).abs().max().item() < 1e-5


def test_stereo_release_end_to_end_audio_matches(audiocraft_t5: str, tmp_path: Path) -> None:
    """audiocraft's ``MusicGen.generate`` with its ``InterleaveStereoCompressionModel`` and tokenlm's
    ``TextToAudio.generate`` give the same interleaved codes and the same two-channel audio."""
    from audiocraft.models import MusicGen

    from tokenlm.api import TextToAudio

    codec, lm = _release_with_codec(stereo_cfg(audiocraft_t5, card=64, genre_route=None), tmp_path / "st", seed=9)
    reference = MusicGen("tiny-stereo", codec, lm, max_duration=20.0)
    reference.set_generation_params(use_sampling=False, duration=0.4, cfg_coef=3.0)
    prompts = ["a dog barks twice", "heavy rain on a tin roof with distant thunder"]
    with torch.no_grad():
        expected_wav, expected_codes = reference.generate(prompts, return_tokens=True)  # [B, 2, N], [B, 2K, T]

    model = TextToAudio(load_audiocraft(tmp_path / "st", t5=audiocraft_t5))
    audio = model.generate(prompts, duration=0.4, temperature=0.0, cfg_coef=3.0, return_codes=True)
    assert (audio.codes - expected_codes).abs().max().item() == 0 and audio.codes.unique().numel() > 8
    assert audio.wav.shape == expected_wav.shape == (2, 2, 6400)
    assert (audio.wav - expected_wav).abs().max().item() < 1e-5

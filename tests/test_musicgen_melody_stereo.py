"""MusicGen-Melody and stereo MusicGen from transformers folders: exact parity with transformers' own models.

Tiny random models (the ``tiny_t5_dir`` T5, a 16 kHz 4 x 128-code EnCodec, a 2-layer decoder) are saved like Hub
folders and loaded by tokenlm. transformers' ``MusicgenMelodyFeatureExtractor`` needs torchaudio, which has no wheel
for tokenlm's torch: here the chroma is checked against a NumPy computation of the same formula, and against the
feature extractor itself in the compat environment (``tests/compat/test_musicgen_melody_features.py``).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.stats import chi2_contingency
from transformers import (
    AutoTokenizer,
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    MusicgenMelodyConfig,
    MusicgenMelodyDecoderConfig,
    MusicgenMelodyForConditionalGeneration,
    T5Config,
)
from transformers.audio_utils import chroma_filter_bank

from conditioners.base import AudioValue
from conditioners.chroma import ChromaConditioner
from tokenlm import TextToAudio
from tokenlm.api import Audio
from tokenlm.codecs import EncodecCodec, StereoEncodecCodec, tiny_encodec_config
from tokenlm.convert import convert_musicgen_hf, load_musicgen_hf
from tokenlm.lm.sampling import SamplingParams

CARD, K, RATE, FRAME_RATE = 128, 4, 16000, 50
CHROMA_LENGTH = 12  # frames of chroma prepended (235 in the released models)
#: the feature extractor's settings saved beside the tiny melody model (MusicGen-Melody: 32 kHz, 16384, 4096)
CHROMA = {"sampling_rate": RATE, "n_fft": 2048, "hop_length": 512, "chunk_length": 30}
PROMPTS = ["a dog barks twice", "jazz piano with soft drums in a small room near a river at night"]


def scale_tune(seconds: float = 2.0, rate: int = RATE, start_hz: float = 440.0) -> torch.Tensor:
    """``[1, N]`` a rising semitone scale, four notes a second, with a quieter fifth above each note."""
    t = torch.arange(int(seconds * rate)) / rate
    freq = start_hz * 2 ** (torch.floor(t * 4) / 12)
    return (0.5 * torch.sin(2 * torch.pi * freq * t) + 0.2 * torch.sin(2 * torch.pi * 1.5 * freq * t))[None]


def _fan_in_init(*modules: torch.nn.Module) -> None:
    """transformers' std-0.02 init leaves the conditions little say; fan-in weights and spread biases make every
    layer and every bias matter, so the conditions and guidance change the greedy codes."""
    for module in modules:
        for param in module.parameters():
            if param.dim() == 2:
                torch.nn.init.normal_(param, std=param.shape[-1] ** -0.5)
            else:
                torch.nn.init.normal_(param, std=0.5)


def _finish(model, folder: Path, t5_dir: Path, encodec_kwargs: dict) -> None:
    codec = EncodecCodec.from_config(encodec_kwargs, seed=0)  # seeded, spread-out codebooks
    model.audio_encoder.load_state_dict(codec.model.state_dict())
    model.generation_config.max_length = 100
    model.generation_config.decoder_start_token_id = CARD
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(t5_dir).save_pretrained(folder)


def save_tiny_melody(folder: Path, t5_dir: Path, seed: int = 0) -> MusicgenMelodyForConditionalGeneration:
    """A seeded random MusicGen-Melody saved with its tokenizer and feature-extractor settings."""
    encodec_kwargs = tiny_encodec_config(codebook_size=CARD, num_codebooks=K)
    decoder = MusicgenMelodyDecoderConfig(
        vocab_size=CARD, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, ffn_dim=96, num_codebooks=K,
        pad_token_id=CARD, bos_token_id=CARD, max_position_embeddings=512,
    )
    config = MusicgenMelodyConfig(text_encoder=T5Config.from_pretrained(t5_dir),
                                  audio_encoder=EncodecConfig(**encodec_kwargs), decoder=decoder,
                                  chroma_length=CHROMA_LENGTH)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MusicgenMelodyForConditionalGeneration(config).eval()
        _fan_in_init(model.decoder, model.enc_to_dec_proj, model.audio_enc_to_dec_proj)
    _finish(model, folder, t5_dir, encodec_kwargs)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "MusicgenMelodyFeatureExtractor", "feature_size": 12, **CHROMA}))
    return model


def save_tiny_stereo(folder: Path, t5_dir: Path, seed: int = 0) -> MusicgenForConditionalGeneration:
    """A seeded random stereo MusicGen: 2K interleaved codebooks over the mono K-codebook EnCodec."""
    encodec_kwargs = tiny_encodec_config(codebook_size=CARD, num_codebooks=K)
    decoder = MusicgenDecoderConfig(
        vocab_size=CARD, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, ffn_dim=96,
        num_codebooks=2 * K, audio_channels=2, pad_token_id=CARD, bos_token_id=CARD, max_position_embeddings=256,
    )
    config = MusicgenConfig(text_encoder=T5Config.from_pretrained(t5_dir),
                            audio_encoder=EncodecConfig(**encodec_kwargs), decoder=decoder)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(config).eval()
        _fan_in_init(model.decoder, model.enc_to_dec_proj)
    _finish(model, folder, t5_dir, encodec_kwargs)
    return model


@pytest.fixture(scope="module")
def melody_model(tmp_path_factory: pytest.TempPathFactory, tiny_t5_dir: Path):
    folder = tmp_path_factory.mktemp("musicgen_melody")
    return save_tiny_melody(folder, tiny_t5_dir), folder


@pytest.fixture(scope="module")
def stereo_model(tmp_path_factory: pytest.TempPathFactory, tiny_t5_dir: Path):
    folder = tmp_path_factory.mktemp("musicgen_stereo")
    return save_tiny_stereo(folder, tiny_t5_dir), folder


def _spy_codes(model, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The codes transformers hands its EnCodec (one call per channel for stereo)."""
    caught: list[torch.Tensor] = []
    decode = model.audio_encoder.decode

    def spy(audio_codes: torch.Tensor, *args, **kwargs):
        caught.append(audio_codes[0])  # [1, B, K, T] -> [B, K, T]
        return decode(audio_codes, *args, **kwargs)

    monkeypatch.setattr(model.audio_encoder, "decode", spy)
    return caught


# ------------------------------------------------------------------------------------------------------ chroma


def numpy_chroma(wav: np.ndarray, rate: int, n_fft: int, hop: int) -> np.ndarray:
    """``[T, 12]`` max-normalised chroma of a ``[N]`` waveform, computed independently with NumPy: a periodic Hann
    window, reflect-padded centred frames, ``|rfft|^2 / sum(w^2)``, librosa's filter bank."""
    if len(wav) < n_fft:
        pad = n_fft - len(wav)
        wav = np.pad(wav, (pad // 2, pad - pad // 2))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(wav, n_fft // 2, mode="reflect")
    frames = [padded[i: i + n_fft] * window for i in range(0, len(padded) - n_fft + 1, hop)]
    power = np.abs(np.fft.rfft(np.stack(frames), axis=-1)) ** 2 / np.sum(window ** 2)  # [T, F]
    raw = power @ chroma_filter_bank(num_frequency_bins=n_fft, num_chroma=12, sampling_rate=rate, tuning=0).T
    return raw / np.maximum(raw.max(axis=1, keepdims=True), 1e-6)


def test_chroma_features_equal_the_formula() -> None:
    chroma = ChromaConditioner("melody", 8, sample_rate=RATE, n_fft=2048, hop_length=512, argmax=False)
    long, short = scale_tune(2.0), scale_tune(0.05)  # the short one is padded around to one window
    for wav in (long, short):
        ours = chroma.chroma(wav)[0].numpy()  # [T, 12]
        reference = numpy_chroma(wav[0].double().numpy(), RATE, 2048, 512)
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, atol=2e-4)
    one_hot = ChromaConditioner("melody", 8, sample_rate=RATE, n_fft=2048, hop_length=512).chroma(long)[0]
    assert torch.equal(one_hot.argmax(-1), torch.from_numpy(numpy_chroma(long[0].numpy(), RATE, 2048, 512)).argmax(-1))
    assert torch.equal(one_hot.sum(-1), torch.ones(one_hot.shape[0]))
    # the notes of the scale, A (class 9) rising a semitone every quarter second: frames well inside each note
    hop_s = 512 / RATE
    middles = [int((0.125 + 0.25 * n) / hop_s) for n in range(8)]
    assert one_hot[middles].argmax(-1).tolist() == [(9 + n) % 12 for n in range(8)]


def test_chroma_batch_null_rows_repeat_and_projection() -> None:
    torch.manual_seed(0)
    chroma = ChromaConditioner("melody", 6, sample_rate=RATE, n_fft=2048, hop_length=512, chroma_length=40)
    torch.nn.init.normal_(chroma.proj.bias)  # a bias, so a wrong null (zeros) or dropped bias shows
    short, long = AudioValue(scale_tune(0.5), RATE), AudioValue(scale_tune(1.0), RATE)
    features = chroma.features([short, None, long])
    frames = chroma.chroma(scale_tune(1.0)).shape[1]  # 32 frames for 1 s: the batch is padded to its longest
    assert features["chroma"].shape == (3, frames, 12) and features["null"].tolist() == [False, True, False]
    assert torch.equal(features["chroma"][1], torch.nn.functional.one_hot(torch.zeros(frames).long(), 12).float())
    padded = torch.nn.functional.pad(scale_tune(0.5), (0, RATE // 2))  # zeros after it, as the feature extractor
    assert torch.equal(features["chroma"][0], chroma.chroma(padded)[0])
    condition = chroma(features)
    assert condition.embeds.shape == (3, 40, 6) and bool(condition.mask.all())
    projected = features["chroma"] @ chroma.proj.weight.T + chroma.proj.bias  # [3, 32, 6]
    expected = torch.cat([projected, projected[:, : 40 - frames]], dim=1)  # repeated, then cut at 40
    torch.testing.assert_close(condition.embeds, expected)
    null = chroma.encode([None])  # no melody at all: one frame of C, repeated
    torch.testing.assert_close(null.embeds[0], (chroma.proj.weight[:, 0] + chroma.proj.bias).expand(40, 6))
    resampled = chroma.features([AudioValue(scale_tune(1.0, rate=8000), 8000)])["chroma"][0]  # converted to 16 kHz
    assert (resampled.argmax(-1) == features["chroma"][2].argmax(-1)).float().mean() > 0.9


@pytest.mark.parametrize("bad", [dict(n_fft=0), dict(hop_length=1.5), dict(chroma_length=True),
                                 dict(chunk_length=0)])
def test_chroma_bad_settings(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        ChromaConditioner("melody", 8, **bad)


# ------------------------------------------------------------------------------------------------ MusicGen-Melody


def test_melody_folder_maps_onto_prepended_conditions(melody_model) -> None:
    _, folder = melody_model
    backend = load_musicgen_hf(folder)
    cfg = backend.lm.config
    assert (cfg.cross_attention, cfg.prefix_positions, cfg.prefix_padding) == (False, "shared", "attended")
    assert backend.conditioning.routes == {"melody": "prepend", "description": "prepend"}
    assert list(backend.conditioning.conditioners) == ["melody", "description"]  # chroma first, as transformers
    chroma = backend.conditioning.conditioners["melody"]
    assert (chroma.sample_rate, chroma.n_fft, chroma.hop_length, chroma.chroma_length) == (RATE, 2048, 512, 12)


@pytest.mark.parametrize("guidance", [3.0, 1.0])
def test_melody_greedy_generation_matches_transformers(melody_model, monkeypatch, guidance: float) -> None:
    model, folder = melody_model
    backend = load_musicgen_hf(folder)
    caught = _spy_codes(model, monkeypatch)
    inputs = AutoTokenizer.from_pretrained(folder)(PROMPTS, padding=True, return_tensors="pt")
    assert inputs["attention_mask"][0].sum() < inputs["attention_mask"][1].sum()  # the text padding is exercised
    tune = AudioValue(scale_tune(2.0), RATE)
    chroma = backend.conditioning.conditioners["melody"].features([tune, tune])["chroma"]  # [2, 63, 12] > 12 frames
    results = {}
    for with_melody in (True, False):
        caught.clear()
        extra = {"input_features": chroma} if with_melody else {}
        wav = model.generate(**inputs, **extra, do_sample=False, guidance_scale=guidance, max_new_tokens=16)
        frames = caught[0].shape[-1]
        attributes = [{"description": text, **({"melody": tune} if with_melody else {})} for text in PROMPTS]
        codes = backend.generate_tokens(attributes, (frames - 0.5) / FRAME_RATE,
                                        SamplingParams(temperature=0, cfg_coef=guidance))
        assert codes.shape == (2, K, 13)
        assert torch.equal(codes, caught[0])  # max |diff| 0
        torch.testing.assert_close(backend.decode(codes), wav, atol=1e-5, rtol=1e-4)
        results[with_melody] = codes
    assert not torch.equal(results[True], results[False])  # the melody steers the codes
    assert not torch.equal(results[True][0], results[True][1])  # and so does the text


def test_melody_layout_flags_are_what_makes_parity(melody_model) -> None:
    """Positions counted from the first prepended token, and the text's padding attended as zero vectors: either
    of tokenlm's own layouts gives other codes."""
    _, folder = melody_model
    backend = load_musicgen_hf(folder)
    attributes = [{"description": text, "melody": AudioValue(scale_tune(), RATE)} for text in PROMPTS]
    params = SamplingParams(temperature=0, cfg_coef=3.0)
    reference = backend.generate_tokens(attributes, 0.25, params)
    for field, value in (("prefix_positions", "before"), ("prefix_padding", "masked")):
        setattr(backend.lm.config, field, value)
        assert not torch.equal(backend.generate_tokens(attributes, 0.25, params), reference), field
        setattr(backend.lm.config, field, "shared" if field == "prefix_positions" else "attended")


def _first_frame_draws(model, backend, folder: Path, attribute: dict, extra: dict, codebooks: int,
                       draws: int = 600) -> tuple[torch.Tensor, torch.Tensor]:
    """``[draws, codebooks]`` first-frame tokens of the first ``codebooks`` codebooks (those sampled at the first
    step: no earlier token differs between draws), from transformers and from tokenlm, top-k 5 with guidance."""
    inputs = AutoTokenizer.from_pretrained(folder)([attribute["description"]] * draws, padding=True,
                                                   return_tensors="pt")
    torch.manual_seed(0)
    caught = []
    decode = model.audio_encoder.decode
    model.audio_encoder.decode = lambda codes, *a, **k: caught.append(codes[0]) or decode(codes, *a, **k)
    try:
        model.generate(**inputs, **extra, do_sample=True, top_k=5, guidance_scale=3.0, max_new_tokens=K)
    finally:
        model.audio_encoder.decode = decode
    theirs = caught[0][:, :codebooks, 0] if len(caught) == 1 else torch.stack([c[:, 0, 0] for c in caught], 1)
    ours = backend.generate_tokens([attribute] * draws, 0.5 / FRAME_RATE, SamplingParams(top_k=5, cfg_coef=3.0),
                                   seed=1)[:, :codebooks, 0]
    return theirs, ours


def _same_distribution(theirs: torch.Tensor, ours: torch.Tensor) -> None:
    """Each column: at most top-k values, more than two seen, and a chi-square test of homogeneity passes."""
    for column in range(theirs.shape[1]):
        a, b = theirs[:, column], ours[:, column]
        support = sorted(set(a.tolist()) | set(b.tolist()))
        assert 3 <= len(support) <= 5  # top-k bounds the support, and more than one token is likely
        table = np.array([[int((x == s).sum()) for s in support] for x in (a, b)])
        assert chi2_contingency(table).pvalue > 1e-3, (column, table)


def test_melody_top_k_sampling_draws_from_the_same_distribution(melody_model) -> None:
    """Top-k 5 with guidance, with a melody: the first frame's codebook-0 token, 600 draws each from transformers
    and tokenlm, compared by a chi-square test of homogeneity."""
    model, folder = melody_model
    backend = load_musicgen_hf(folder)
    tune = AudioValue(scale_tune(), RATE)
    chroma = backend.conditioning.conditioners["melody"].features([tune])["chroma"].expand(600, -1, -1)
    theirs, ours = _first_frame_draws(model, backend, folder, {"description": PROMPTS[1], "melody": tune},
                                      {"input_features": chroma}, codebooks=1)
    _same_distribution(theirs, ours)


def test_stereo_top_k_sampling_draws_from_the_same_distribution(stereo_model) -> None:
    """The same for stereo MusicGen: the first frame's left and right codebook-0 tokens (both drawn at step one)."""
    model, folder = stereo_model
    backend = load_musicgen_hf(folder)
    theirs, ours = _first_frame_draws(model, backend, folder, {"description": PROMPTS[1]}, {}, codebooks=2)
    _same_distribution(theirs, ours)


def test_melody_converts_and_generates_through_the_api(melody_model, tmp_path: Path) -> None:
    _, folder = melody_model
    destination = convert_musicgen_hf(folder, tmp_path / "converted")
    direct, converted = TextToAudio.from_pretrained(folder), TextToAudio.from_pretrained(destination)
    tune_path = tmp_path / "tune.wav"
    sf.write(tune_path, scale_tune(1.0)[0].numpy(), RATE)
    a = direct.generate(PROMPTS, 0.3, seed=0, melody=tune_path, return_codes=True)
    b = converted.generate(PROMPTS, 0.3, seed=0, melody=str(tune_path), return_codes=True)
    assert torch.equal(a.codes, b.codes) and a.wav.shape == (2, 1, round(0.3 * RATE))
    # one melody for all, as a path, a tensor, an array or an Audio: the same codes
    tensor = direct.generate(PROMPTS, 0.3, seed=0, melody=scale_tune(1.0), melody_sample_rate=RATE,
                             return_codes=True)
    array = direct.generate(PROMPTS, 0.3, seed=0, melody=scale_tune(1.0)[0].numpy(), melody_sample_rate=RATE,
                            return_codes=True)
    audio = direct.generate(PROMPTS, 0.3, seed=0, melody=Audio(scale_tune(1.0)[None], RATE), return_codes=True)
    for other in (tensor, array, audio):
        torch.testing.assert_close(other.codes, a.codes, atol=0, rtol=0)
    # one per prompt; a different tune changes the first prompt's codes only where it differs
    other_tune = scale_tune(1.0, start_hz=330.0)
    each = direct.generate(PROMPTS, 0.3, seed=0, melody=[other_tune, tune_path], melody_sample_rate=RATE,
                           return_codes=True)
    assert not torch.equal(each.codes[0], a.codes[0])
    two_channels = direct.generate(PROMPTS, 0.3, seed=0, melody=scale_tune(1.0).expand(2, -1),
                                   melody_sample_rate=RATE, return_codes=True)  # mixed to mono first
    assert torch.equal(two_channels.codes, a.codes)
    without = direct.generate(PROMPTS, 0.3, seed=0, return_codes=True)  # text alone, as transformers does
    assert not torch.equal(without.codes, a.codes)


def test_melody_bad_input(melody_model, tmp_path: Path, tiny_backend) -> None:
    _, folder = melody_model
    model = TextToAudio.from_pretrained(folder)
    with pytest.raises(ValueError, match="takes no melody.*chroma conditioner"):
        TextToAudio(tiny_backend).generate("a tone", 0.2, melody=scale_tune(), melody_sample_rate=RATE)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not audio")
    cases = [
        (dict(melody=tmp_path / "broken.wav"), "cannot be read as audio"),
        (dict(melody=torch.zeros(1, RATE), melody_sample_rate=RATE), "is silent"),
        (dict(melody=torch.full((1, RATE), float("nan")), melody_sample_rate=RATE), "NaN or infinite"),
        (dict(melody=torch.zeros(1, 0), melody_sample_rate=RATE), "is empty"),
        (dict(melody=scale_tune()), "melody_sample_rate"),
        (dict(melody=[scale_tune()] * 3, melody_sample_rate=RATE), "got 3 melodies for 2 prompts"),
        (dict(melody=torch.ones(1, 10, dtype=torch.int16), melody_sample_rate=RATE), "float samples"),
        (dict(melody=42), "melody must be a file path"),
        (dict(melody_sample_rate=RATE), "melody_sample_rate goes with melody="),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            model.generate(PROMPTS, 0.2, **kwargs)
    with pytest.raises(ValueError, match="only None"):
        model.generate(PROMPTS, 0.2, melody=[None, None])
    with pytest.warns(UserWarning, match=r"lasts 2.00 s, longer than the 0.2 s asked for: the audio follows its"):
        longer = model.generate(PROMPTS[:1], 0.2, seed=0, melody=scale_tune(2.0), melody_sample_rate=RATE,
                                return_codes=True)
    # not cut to the duration: the chroma covers the window, as transformers and audiocraft take it
    whole = model.backend.generate_tokens([{"description": PROMPTS[0], "melody": AudioValue(scale_tune(2.0), RATE)}],
                                          0.2, model.backend.make_sampling({}), seed=0)
    assert torch.equal(longer.codes, whole)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when it fits
        model.generate(PROMPTS[:1], 0.2, seed=0, melody=scale_tune(0.2), melody_sample_rate=RATE)


def test_melody_for_some_prompts_only(melody_model) -> None:
    _, folder = melody_model
    model = TextToAudio.from_pretrained(folder)
    mixed = model.generate(PROMPTS, 0.3, seed=0, melody=[scale_tune(1.0), None], melody_sample_rate=RATE,
                           return_codes=True)
    attributes = [{"description": PROMPTS[0], "melody": AudioValue(scale_tune(1.0), RATE)},
                  {"description": PROMPTS[1]}]
    expected = model.backend.generate_tokens(attributes, 0.3, model.backend.make_sampling({}), seed=0)
    assert torch.equal(mixed.codes, expected)


def test_longer_than_the_window_follows_the_melody_on(melody_model, monkeypatch) -> None:
    """Past the 2 s window, each window is conditioned on the melody from that window's start, as audiocraft does;
    once the melody is over, on no melody."""
    _, folder = melody_model
    backend = load_musicgen_hf(folder)
    assert backend.max_duration == 2.0
    seen: list[tuple[bool, object]] = []
    encode = backend.conditioning.encode

    def spy(attributes, null=False):
        seen.append((null, attributes[0].get("melody")))
        return encode(attributes, null=null)

    monkeypatch.setattr(backend.conditioning, "encode", spy)
    tune = AudioValue(scale_tune(3.2), RATE)
    codes = backend.generate_tokens([{"description": PROMPTS[0], "melody": tune}], 4.0,
                                    SamplingParams(temperature=0, cfg_coef=3.0), extend_stride=1.0)
    assert codes.shape[-1] == 200
    melodies = [value for null, value in seen if not null]  # windows start at 0, 1 and 2 s
    assert len(melodies) == 3 and melodies[0] is tune
    assert torch.equal(melodies[1].wav, tune.wav[:, RATE:]) and torch.equal(melodies[2].wav, tune.wav[:, 2 * RATE:])
    short = AudioValue(scale_tune(1.5), RATE)  # over before the third window: that one has no melody
    seen.clear()
    backend.generate_tokens([{"description": PROMPTS[0], "melody": short}], 4.0,
                            SamplingParams(temperature=0, cfg_coef=3.0), extend_stride=1.0)
    assert [value is None for null, value in seen if not null] == [False, False, True]


def test_cli_generate_with_melody(melody_model, tmp_path: Path) -> None:
    from tokenlm.cli import main

    _, folder = melody_model
    tune = tmp_path / "tune.wav"
    sf.write(tune, scale_tune(1.0)[0].numpy(), RATE)
    out = tmp_path / "out.wav"
    assert main(["generate", "a flute", "--model", str(folder), "--melody", str(tune), "--duration", "0.3",
                 "--seed", "0", "--out", str(out), "--quiet"]) == 0
    wav, rate = sf.read(out, dtype="float32")
    expected = TextToAudio.from_pretrained(folder).generate("a flute", 0.3, seed=0, melody=tune)
    assert rate == RATE and np.abs(wav - expected.wav[0, 0].numpy()).max() < 1e-4  # PCM_16 rounding


# ------------------------------------------------------------------------------------------------------- stereo


@pytest.mark.parametrize("guidance", [3.0, 1.0])
def test_stereo_greedy_generation_matches_transformers(stereo_model, monkeypatch, guidance: float) -> None:
    model, folder = stereo_model
    backend = load_musicgen_hf(folder)
    assert isinstance(backend.codec, StereoEncodecCodec) and backend.delays == [0, 0, 1, 1, 2, 2, 3, 3]
    caught = _spy_codes(model, monkeypatch)
    inputs = AutoTokenizer.from_pretrained(folder)(PROMPTS, padding=True, return_tensors="pt")
    wav = model.generate(**inputs, do_sample=False, guidance_scale=guidance, max_new_tokens=16)  # [2, 2, N]
    left, right = caught  # transformers decodes the left codebooks, then the right ones
    frames = left.shape[-1]
    codes = backend.generate_tokens([{"description": text} for text in PROMPTS], (frames - 0.5) / FRAME_RATE,
                                    SamplingParams(temperature=0, cfg_coef=guidance))
    assert codes.shape == (2, 2 * K, frames)
    assert torch.equal(codes[:, 0::2], left) and torch.equal(codes[:, 1::2], right)  # max |diff| 0
    assert not torch.equal(codes[:, 0::2], codes[:, 1::2])  # the channels differ
    decoded = backend.decode(codes)
    assert decoded.shape == wav.shape == (2, 2, frames * 320)
    torch.testing.assert_close(decoded, wav, atol=1e-5, rtol=1e-4)


def test_stereo_codec_interleaves_two_mono_channels() -> None:
    mono = EncodecCodec.from_config(tiny_encodec_config(), seed=0)
    stereo = StereoEncodecCodec(mono)
    wav = torch.randn(2, 2, 3200, generator=torch.Generator().manual_seed(0)) * 0.2  # [B, 2, N]
    codes = stereo.encode(wav)
    assert codes.shape == (2, 8, 10)
    assert (stereo.channels, stereo.num_codebooks, stereo.latent_dim) == (2, 8, 2 * mono.latent_dim)
    assert torch.equal(codes[:, 0::2], mono.encode(wav[:, :1]))
    assert torch.equal(codes[:, 1::2], mono.encode(wav[:, 1:]))
    decoded = stereo.decode(codes)
    torch.testing.assert_close(decoded[:, :1], mono.decode(codes[:, 0::2]))
    torch.testing.assert_close(decoded[:, 1:], mono.decode(codes[:, 1::2]))
    torch.testing.assert_close(stereo.decode_latent(stereo.codes_to_latent(codes)), decoded)
    latent = stereo.encode_latent(wav)
    torch.testing.assert_close(latent, torch.cat([mono.encode_latent(wav[:, :1]), mono.encode_latent(wav[:, 1:])], 1))
    with pytest.raises(ValueError, match=r"\[B, 2, N\]"):
        stereo.encode(wav[:, :1])
    with pytest.raises(ValueError, match="K=8"):
        stereo.decode(codes[:, :4])
    two_channel = EncodecCodec.from_config({**tiny_encodec_config(), "audio_channels": 2}, seed=0)
    with pytest.raises(ValueError, match="built from a mono EnCodec"):
        StereoEncodecCodec(two_channel)


def test_stereo_converts_writes_two_channels_and_fine_tunes(stereo_model, tmp_path: Path) -> None:
    from tests.conftest import tiny_recipe_overrides
    from tokenlm.train.main import run

    _, folder = stereo_model
    destination = convert_musicgen_hf(folder, tmp_path / "converted")
    assert json.loads((destination / "config.json").read_text())["codec"]["kind"] == "encodec_stereo"
    model = TextToAudio.from_pretrained(destination)
    audio = model.generate(PROMPTS[0], 0.3, seed=0, return_codes=True)
    assert audio.wav.shape == (1, 2, round(0.3 * RATE)) and audio.codes.shape[1] == 2 * K
    assert torch.equal(audio.codes, TextToAudio.from_pretrained(folder).generate(
        PROMPTS[0], 0.3, seed=0, return_codes=True).codes)
    path = audio.save(tmp_path / "stereo.wav")[0]
    assert sf.info(path).channels == 2

    data = tmp_path / "data"
    data.mkdir()
    lines = []
    for i in range(4):  # stereo clips whose channels differ
        wav = torch.cat([scale_tune(1.2, start_hz=220.0 * (1 + i)), 0.5 * scale_tune(1.2, start_hz=330.0)])
        sf.write(data / f"clip{i}.wav", wav.T.numpy(), RATE)
        lines.append(json.dumps({"path": f"clip{i}.wav", "duration": 1.2, "sample_rate": RATE, "channels": 2,
                                 "description": f"a rising scale number {i}"}))
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    (data / "valid.jsonl").write_text(lines[0] + "\n")
    overrides = tiny_recipe_overrides(tmp_path / "run", data, 2, f"init_from={destination}",
                                      f"data.cache={tmp_path / 'cache'}", warmup_steps=1)
    exported = run(overrides)
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["codec"]["channels"] == 2 and index["codec"]["kind"] == "encodec_stereo"
    assert index["num_codebooks"] == 2 * K
    tuned = TextToAudio.from_pretrained(exported)
    assert isinstance(tuned.backend.codec, StereoEncodecCodec) and tuned.backend.delays == [0, 0, 1, 1, 2, 2, 3, 3]
    before, after = model.backend.lm.state_dict(), tuned.backend.lm.state_dict()
    assert any(not torch.equal(before[name], after[name]) for name in before)  # it trained
    assert tuned.generate(PROMPTS[0], 0.3, seed=0).wav.shape == (1, 2, round(0.3 * RATE))


def test_stereo_errors(stereo_model, tmp_path: Path) -> None:
    _, folder = stereo_model
    odd = tmp_path / "odd"
    shutil.copytree(folder, odd)
    config = json.loads((odd / "config.json").read_text())
    config["decoder"]["num_codebooks"] = 7
    (odd / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="predicts 7 codebooks.*must be even"):
        load_musicgen_hf(odd)
    with pytest.raises(FileNotFoundError, match=r"init_from .* \(no config.json\)"):
        from tokenlm.train.main import copy_initial_model

        copy_initial_model(tmp_path / "nowhere", tmp_path / "init")

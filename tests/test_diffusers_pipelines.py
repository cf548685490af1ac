"""Backend ``diffusers``: tiny random AudioLDM, AudioLDM 2, MusicLDM and Stable Audio pipelines, saved as diffusers
folders and run through ``TextToAudio`` — the output is the pipeline's own for the same arguments and seed."""

import copy
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tokenlm import TextToAudio, cli
from tokenlm.audio import read_audio
from tokenlm.pipelines import SUPPORTED_PIPELINES, DiffusersBackend
from tokenlm.pipelines.diffusers_backend import adapt_pipeline, pipeline_defaults

try:  # tests/ is on sys.path under pytest's default (prepend) import mode
    from test_ldm import make_ldm
except ImportError:  # importlib import mode, or tests/ made a package
    from tests.test_ldm import make_ldm

pytestmark = [
    pytest.mark.filterwarnings("ignore:Should have:UserWarning"),  # torchsde's Brownian tree at a few tiny steps
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

PROMPTS = ["a dog barks twice", {"description": "rain on a tin roof"}]
TEXTS = ["a dog barks twice", "rain on a tin roof"]


def _t5_tokenizer(tiny_t5_dir: Path):
    from transformers import T5Tokenizer

    return T5Tokenizer.from_pretrained(tiny_t5_dir, model_max_length=16)  # the pipelines pad to model_max_length


def _tiny_vocoder():
    """A random 16 kHz ``SpeechT5HifiGan`` over 8 mel bins, 4 samples per mel frame (drawn from the current RNG)."""
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    return SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[2, 2],
        upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5]] * 2,
        normalize_before=False,
    ))


def _ddim():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False)


def _ldm1_parts(tiny_clap_dir: Path) -> dict:
    """The components AudioLDM and MusicLDM share, as diffusers' fast tests build them: a UNet conditioned on the CLAP
    text projection (16) as a class embedding concatenated to the time embedding (no cross-attention context: its
    attention blocks attend to themselves), a VAE of scale 2 over 1-channel mels, the tiny vocoder, DDIM, and the
    tiny CLAP's Roberta tokenizer (padding to 20 tokens, so it differs from the projection size the pipelines
    pad negative prompts to)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import RobertaTokenizer

    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=(8, 16),
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=16, class_embeddings_concat=True,
    )
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=1, out_channels=1, latent_channels=4,
                        norm_num_groups=8, down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2)
    return dict(unet=unet, vae=vae, vocoder=_tiny_vocoder(), scheduler=_ddim(),
                tokenizer=RobertaTokenizer.from_pretrained(tiny_clap_dir, model_max_length=20))


def build_audioldm(tiny_clap_dir: Path):
    """A tiny random ``AudioLDMPipeline``: the shared parts and the tiny CLAP's text tower with its projection
    (``ClapTextModelWithProjection`` loads the ``text_model`` and ``text_projection`` weights of the ``ClapModel``)."""
    from diffusers import AudioLDMPipeline
    from transformers import ClapTextModelWithProjection

    with torch.random.fork_rng():
        torch.manual_seed(0)
        pipeline = AudioLDMPipeline(text_encoder=ClapTextModelWithProjection.from_pretrained(tiny_clap_dir),
                                    **_ldm1_parts(tiny_clap_dir))
    return pipeline


def build_musicldm(tiny_clap_dir: Path):
    """A tiny random ``MusicLDMPipeline``: the shared parts, the whole tiny ``ClapModel`` and its feature extractor."""
    from diffusers import MusicLDMPipeline
    from transformers import ClapFeatureExtractor, ClapModel

    with torch.random.fork_rng():
        torch.manual_seed(1)
        pipeline = MusicLDMPipeline(text_encoder=ClapModel.from_pretrained(tiny_clap_dir),
                                    feature_extractor=ClapFeatureExtractor.from_pretrained(tiny_clap_dir),
                                    **_ldm1_parts(tiny_clap_dir))
    return pipeline


def build_audioldm2(tiny_clap_dir: Path, tiny_t5_dir: Path, language_model: str = "GPT2LMHeadModel"):
    """A tiny random ``AudioLDM2Pipeline`` laid out as diffusers' own fast tests build it (16 kHz vocoder, 4 samples
    per mel frame, VAE scale 2), with the CLAP and T5 tokenizers built offline by the shared fixtures."""
    import transformers
    from diffusers import (
        AudioLDM2Pipeline,
        AudioLDM2ProjectionModel,
        AudioLDM2UNet2DConditionModel,
        AutoencoderKL,
    )
    from transformers import ClapFeatureExtractor, ClapModel, GPT2Config, RobertaTokenizer, T5EncoderModel

    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = AudioLDM2UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=([None, 16, 32], [None, 16, 32]),
        )
        vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=1, out_channels=1, latent_channels=4,
                            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
        gpt2 = getattr(transformers, language_model)(
            GPT2Config(n_embd=16, n_head=2, n_layer=2, vocab_size=64, n_ctx=99, n_positions=99, bos_token_id=0,
                       eos_token_id=0)
        )
        gpt2.config.max_new_tokens = 8
        vocoder = _tiny_vocoder()
        pipeline = AudioLDM2Pipeline(
            vae=vae,
            text_encoder=ClapModel.from_pretrained(tiny_clap_dir),  # text projection 16
            text_encoder_2=T5EncoderModel.from_pretrained(tiny_t5_dir),  # d_model 32
            projection_model=AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=32,
                                                      langauge_model_dim=16),
            language_model=gpt2,
            tokenizer=RobertaTokenizer.from_pretrained(tiny_clap_dir, model_max_length=16),
            tokenizer_2=_t5_tokenizer(tiny_t5_dir),
            feature_extractor=ClapFeatureExtractor.from_pretrained(tiny_clap_dir),
            unet=unet,
            scheduler=_ddim(),
            vocoder=vocoder,
        )
    return pipeline


def build_stable_audio(tiny_t5_dir: Path):
    """A tiny random ``StableAudioPipeline`` as diffusers' fast tests build it, with even VAE strides (hop 8 at a
    toy 100 Hz, stereo) and a 16-frame DiT window: at most 1.28 s."""
    from diffusers import (
        AutoencoderOobleck,
        CosineDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
        StableAudioProjectionModel,
    )
    from transformers import T5EncoderModel

    with torch.random.fork_rng():
        torch.manual_seed(0)
        transformer = StableAudioDiTModel(
            sample_size=16, in_channels=3, num_layers=2, attention_head_dim=4, num_key_value_attention_heads=2,
            out_channels=3, cross_attention_dim=4, time_proj_dim=8, global_states_input_dim=8,
            cross_attention_input_dim=4,
        )
        vae = AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[2, 4], decoder_channels=3,
                                 decoder_input_channels=3, audio_channels=2, channel_multiples=[2, 4],
                                 sampling_rate=100)
        pipeline = StableAudioPipeline(
            vae=vae,
            text_encoder=T5EncoderModel.from_pretrained(tiny_t5_dir),
            projection_model=StableAudioProjectionModel(text_encoder_dim=32, conditioning_dim=4, min_value=0,
                                                        max_value=32),
            tokenizer=_t5_tokenizer(tiny_t5_dir),
            transformer=transformer,
            scheduler=CosineDPMSolverMultistepScheduler(solver_order=2, prediction_type="v_prediction",
                                                        sigma_data=1.0, sigma_schedule="exponential"),
        )
    return pipeline


@pytest.fixture(scope="module")
def audioldm2_dir(tmp_path_factory, tiny_clap_dir, tiny_t5_dir) -> Path:
    folder = tmp_path_factory.mktemp("audioldm2")
    build_audioldm2(tiny_clap_dir, tiny_t5_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def stable_audio_dir(tmp_path_factory, tiny_t5_dir) -> Path:
    folder = tmp_path_factory.mktemp("stable_audio")
    build_stable_audio(tiny_t5_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def audioldm_dir(tmp_path_factory, tiny_clap_dir) -> Path:
    folder = tmp_path_factory.mktemp("audioldm")
    build_audioldm(tiny_clap_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def musicldm_dir(tmp_path_factory, tiny_clap_dir) -> Path:
    folder = tmp_path_factory.mktemp("musicldm")
    build_musicldm(tiny_clap_dir).save_pretrained(folder)
    return folder


#: per pipeline: its folder fixture, the length argument, a duration that is whole frames, its sample rate and
#: channels
CASES = {
    "audioldm": ("audioldm_dir", "audio_length_in_s", 0.016, 16000, 1),
    "audioldm2": ("audioldm2_dir", "audio_length_in_s", 0.016, 16000, 1),
    "musicldm": ("musicldm_dir", "audio_length_in_s", 0.016, 16000, 1),
    "stable_audio": ("stable_audio_dir", "audio_end_in_s", 0.96, 100, 2),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    """``(folder, TextToAudio, length argument, duration, sample rate, channels)`` of each pipeline."""
    fixture, length_argument, duration, rate, channels = CASES[request.param]
    folder = request.getfixturevalue(fixture)
    return folder, TextToAudio.from_pretrained(folder), length_argument, duration, rate, channels


def clap_text_embeds(pipeline, texts: list[str], max_length: int) -> torch.Tensor:
    """What MusicLDM's ``_encode_prompt`` takes ``ClapModel.get_text_features`` to return (transformers 4 returned
    it as a tensor): the L2-normalised text projection ``[B, P]`` of the texts padded to ``max_length`` tokens."""
    tokens = pipeline.tokenizer(texts, padding="max_length", max_length=max_length, truncation=True,
                                return_tensors="pt")
    clap = pipeline.text_encoder
    with torch.no_grad():
        pooled = clap.text_model(tokens.input_ids, attention_mask=tokens.attention_mask).pooler_output  # [B, D]
        return F.normalize(clap.text_projection(pooled), dim=-1)  # [B, P]


def _musicldm_arguments(pipeline, texts: list[str], kwargs: dict) -> dict:
    """The stock ``MusicLDMPipeline`` cannot encode text under transformers 5 (``get_text_features`` returns an
    output object it calls ``.to`` on), so the reference call gives it the embeddings it encodes, computed as its
    ``_encode_prompt`` does: prompts padded to the tokenizer's ``model_max_length``, negative prompts (``""`` when
    none) to the embedding width, and only under guidance."""
    kwargs = dict(kwargs)
    negative = kwargs.pop("negative_prompt", None)
    prompt_embeds = clap_text_embeds(pipeline, texts, pipeline.tokenizer.model_max_length)  # [B, P]
    kwargs["prompt_embeds"] = prompt_embeds
    if kwargs.get("guidance_scale", 2.0) > 1:
        negative = [negative] * len(texts) if isinstance(negative, str) else negative or [""] * len(texts)
        kwargs["negative_prompt_embeds"] = clap_text_embeds(pipeline, negative, prompt_embeds.shape[1])
    return kwargs


def direct_call(folder: Path, length_argument: str, duration: float, seed: int, **kwargs) -> torch.Tensor:
    """The diffusers pipeline of ``folder`` called directly: ``[B, C, N]``."""
    import diffusers

    class_name = json.loads((folder / "model_index.json").read_text())["_class_name"]
    pipeline = getattr(diffusers, class_name).from_pretrained(folder, local_files_only=True)
    pipeline.set_progress_bar_config(disable=True)
    prompts: list[str] | None = TEXTS
    if class_name == "MusicLDMPipeline":
        prompts, kwargs = None, _musicldm_arguments(pipeline, TEXTS, kwargs)
    audios = pipeline(prompts, **{length_argument: duration}, generator=torch.Generator().manual_seed(seed),
                      output_type="pt", **kwargs).audios
    return audios if audios.dim() == 3 else audios[:, None]


def test_defaults_are_the_pipelines_own():
    assert pipeline_defaults("AudioLDMPipeline") == (10, 2.5)
    assert pipeline_defaults("AudioLDM2Pipeline") == (200, 3.5)
    assert pipeline_defaults("MusicLDMPipeline") == (200, 2.0)
    assert pipeline_defaults("StableAudioPipeline") == (100, 7.0)


def readme_diffusers_note() -> str:
    """The README's "- **diffusers**:" note under "Bring your own weights", to the next heading or bullet."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return re.search(r"^- \*\*diffusers\*\*:(.*?)(?=^\S|^- |\Z)", readme, flags=re.S | re.M).group(1)


def test_readme_lists_the_supported_pipelines_and_their_defaults():
    """The README's diffusers note names every supported pipeline class and each one's default steps and guidance."""
    note = readme_diffusers_note()
    assert set(re.findall(r"`(\w+Pipeline)`", note)) == set(SUPPORTED_PIPELINES)
    names = {"AudioLDM": "AudioLDMPipeline", "AudioLDM 2": "AudioLDM2Pipeline", "MusicLDM": "MusicLDMPipeline",
             "Stable Audio": "StableAudioPipeline"}
    stated = {names[name]: (int(steps), float(cfg)) for name, steps, cfg in
              re.findall(r"(AudioLDM 2|AudioLDM|MusicLDM|Stable Audio): (\d+) steps, guidance ([\d.]+)", note)}
    assert stated == {name: pipeline_defaults(name) for name in SUPPORTED_PIPELINES}


def test_loads_as_the_diffusers_backend(case):
    folder, model, _, _, rate, channels = case
    backend = model.backend
    assert isinstance(backend, DiffusersBackend) and backend.name == "diffusers"
    assert (model.sample_rate, backend.channels, model.attributes) == (rate, channels, ["description"])
    assert backend.make_sampling({}) == backend.make_sampling(
        {"steps": backend.default_steps, "cfg_coef": backend.default_cfg_coef})
    assert backend.to("cpu") is backend and not any(m.training for m in backend.components.modules())
    on_cpu = TextToAudio.from_pretrained(folder, device="cpu").backend
    assert on_cpu.device == torch.device("cpu") and on_cpu.pipeline.device == torch.device("cpu")


@pytest.mark.parametrize("negative", [None, ["loud noise", "a dog"]])
def test_output_equals_the_direct_pipeline_call(case, negative):
    folder, model, length_argument, duration, rate, channels = case
    audio = model.generate(PROMPTS, duration, steps=2, cfg_coef=3.0, seed=0, negative_prompt=negative)
    direct = direct_call(folder, length_argument, duration, 0, num_inference_steps=2, guidance_scale=3.0,
                         negative_prompt=negative)
    assert audio.wav.shape == (2, channels, round(duration * rate)) and audio.sample_rate == rate
    assert audio.wav.abs().max() > 0 and not torch.equal(audio.wav[0], audio.wav[1])  # sound, and per prompt
    assert torch.equal(audio.wav, direct)


def test_seeds_and_negative_prompts(case):
    _, model, _, duration, _, _ = case
    run = dict(steps=2, cfg_coef=3.0)
    first = model.generate(PROMPTS, duration, seed=1, **run).wav
    assert torch.equal(first, model.generate(PROMPTS, duration, seed=1, **run).wav)
    assert not torch.equal(first, model.generate(PROMPTS, duration, seed=2, **run).wav)
    negative = model.generate(PROMPTS, duration, seed=1, negative_prompt="static hiss", **run).wav
    assert not torch.equal(first, negative)
    one_for_each = model.generate(PROMPTS, duration, seed=1, negative_prompt=["static hiss"] * 2, **run).wav
    assert torch.equal(negative, one_for_each)


def test_steps_and_guidance_reach_the_pipeline(case):
    _, model, _, duration, _, _ = case
    for steps in (1, 3):
        calls: list[tuple[int, int]] = []
        model.generate("a cat meows", duration, steps=steps, seed=0,
                       callback=lambda *step, seen=calls: seen.append(step))
        assert calls == [(i + 1, steps) for i in range(steps)]
    outputs = [model.generate("a cat meows", duration, steps=2, cfg_coef=cfg, seed=0, progress=True).wav
               for cfg in (1.0, 3.0, 6.0)]
    assert not torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[1], outputs[2])


@pytest.mark.parametrize(
    "name,duration,samples",
    [("audioldm2", 0.001, 16), ("audioldm2", 0.0161, 258), ("audioldm2", 0.0375, 600),
     ("audioldm", 0.001, 16), ("audioldm", 0.0161, 258), ("musicldm", 0.0375, 600),
     ("stable_audio", 0.37, 37), ("stable_audio", 1.28, 128), ("stable_audio", 0.015, 2)],
)
def test_duration_gives_its_samples(request, name, duration, samples):
    """Lengths that are not whole frames are rounded up for the pipeline (which truncates) and trimmed after."""
    model = TextToAudio.from_pretrained(request.getfixturevalue(CASES[name][0]))
    assert model.generate("a cat meows", duration, steps=1, seed=0).wav.shape[-1] == samples


@pytest.mark.parametrize(
    "name,duration", [("audioldm", 0.01603), ("audioldm2", 0.01603), ("musicldm", 0.01603), ("stable_audio", 0.374)]
)
def test_a_length_the_pipeline_serves_is_passed_as_given(request, name, duration):
    """256.48 and 37.4 samples: the pipelines return 256 and 37 (= round) for these, so they get them unchanged."""
    fixture, length_argument, _, rate, _ = CASES[name]
    folder = request.getfixturevalue(fixture)
    audio = TextToAudio.from_pretrained(folder).generate(PROMPTS, duration, steps=2, cfg_coef=3.0, seed=0)
    direct = direct_call(folder, length_argument, duration, 0, num_inference_steps=2, guidance_scale=3.0)
    assert audio.wav.shape[-1] == round(duration * rate) and torch.equal(audio.wav, direct)


@pytest.mark.parametrize("name", ["audioldm", "audioldm2", "musicldm"])
def test_mel_pipeline_uneven_length_is_the_next_whole_length_trimmed(request, name):
    folder = request.getfixturevalue(CASES[name][0])
    model = TextToAudio.from_pretrained(folder)
    audio = model.generate(PROMPTS, 0.0161, steps=2, cfg_coef=3.0, seed=0)  # 258 samples: 64.5 mel frames
    direct = direct_call(folder, "audio_length_in_s", 0.0165, 0, num_inference_steps=2, guidance_scale=3.0)
    assert torch.equal(audio.wav, direct[..., :258])  # 66 frames (VAE scale 2), trimmed


def test_stable_audio_duration_outside_the_window_is_explained(stable_audio_dir):
    model = TextToAudio.from_pretrained(stable_audio_dir)
    with pytest.raises(ValueError, match=r"duration 1.3 s is outside what this StableAudioPipeline generates: "
                                         r"\(0, 1.28\] seconds"):
        model.generate("a cat meows", 1.3, steps=1)


def test_save_pretrained_round_trip(case, tmp_path):
    _, model, _, duration, _, _ = case
    saved = model.save_pretrained(tmp_path / "copy")
    assert (saved / "model_index.json").is_file()
    again = TextToAudio.from_pretrained(saved)
    run = dict(steps=2, cfg_coef=3.0, seed=4)
    assert torch.equal(model.generate(PROMPTS, duration, **run).wav, again.generate(PROMPTS, duration, **run).wav)


def test_gpt2model_folders_run_with_the_same_hidden_states(tiny_clap_dir, tiny_t5_dir, tmp_path):
    """Published AudioLDM 2 folders name GPT2Model, which transformers 5 can no longer step; the backend loads the
    same weights into GPT2LMHeadModel, whose last hidden state is the base model's."""
    from transformers import GPT2LMHeadModel, GPT2Model

    build_audioldm2(tiny_clap_dir, tiny_t5_dir, language_model="GPT2Model").save_pretrained(tmp_path)
    base = GPT2Model.from_pretrained(tmp_path / "language_model").eval()
    head = GPT2LMHeadModel.from_pretrained(tmp_path / "language_model").eval()
    embeds = torch.randn(2, 5, 16)
    with torch.no_grad():
        expected = base(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1]
        assert torch.equal(head(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1], expected)
    audio = TextToAudio.from_pretrained(tmp_path).generate(PROMPTS, 0.016, steps=2, seed=0)
    assert audio.wav.shape == (2, 1, 256) and torch.isfinite(audio.wav).all()


def test_musicldm_text_encoder_returns_the_tensor_the_pipeline_expects(musicldm_dir, tmp_path):
    """transformers 5's ``ClapModel.get_text_features`` returns an output object; the backend's MusicLDM text encoder
    returns its normalised projection ``[B, P]`` (transformers 4's tensor), on that instance only, once."""
    from diffusers import MusicLDMPipeline

    model = TextToAudio.from_pretrained(musicldm_dir)
    pipeline = model.backend.pipeline
    tokens = pipeline.tokenizer(TEXTS, padding="max_length", max_length=20, truncation=True, return_tensors="pt")
    with torch.no_grad():
        features = pipeline.text_encoder.get_text_features(tokens.input_ids, attention_mask=tokens.attention_mask)
    assert isinstance(features, torch.Tensor) and features.shape == (2, 16)
    assert torch.equal(features, clap_text_embeds(pipeline, TEXTS, 20))
    adapted = pipeline.text_encoder.get_text_features
    assert adapt_pipeline(pipeline) is pipeline and pipeline.text_encoder.get_text_features is adapted  # once
    copied = copy.deepcopy(pipeline.text_encoder)  # the copy's method is bound to the copy
    assert copied.get_text_features.__self__ is copied and torch.equal(copied.get_text_features(
        tokens.input_ids, attention_mask=tokens.attention_mask), features)

    # the stock pipeline: it fails on the output object (transformers 5) or, where it runs, gives the same audio
    stock = MusicLDMPipeline.from_pretrained(musicldm_dir, local_files_only=True)
    stock.set_progress_bar_config(disable=True)
    run = dict(audio_length_in_s=0.016, num_inference_steps=2, guidance_scale=3.0, output_type="pt")
    try:
        audios = stock(TEXTS, generator=torch.Generator().manual_seed(0), **run).audios
    except AttributeError as error:
        assert "'to'" in str(error)
    else:
        assert torch.equal(audios[:, None], model.generate(PROMPTS, 0.016, steps=2, cfg_coef=3.0, seed=0).wav)

    saved = json.loads((model.save_pretrained(tmp_path / "copy") / "model_index.json").read_text())
    assert saved["text_encoder"] == ["transformers", "ClapModel"]  # diffusers loads the copy as it loads the original


def _broken_copy(source: Path, destination: Path, **index_changes) -> Path:
    shutil.copytree(source, destination)
    index = json.loads((destination / "model_index.json").read_text())
    (destination / "model_index.json").write_text(json.dumps({**index, **index_changes}))
    return destination


def test_folder_errors_are_explained(audioldm2_dir, tmp_path):
    unsupported = _broken_copy(audioldm2_dir, tmp_path / "sd", _class_name="StableDiffusionPipeline")
    with pytest.raises(ValueError, match="pipeline 'StableDiffusionPipeline'.*supported: AudioLDMPipeline, "
                                         "AudioLDM2Pipeline, MusicLDMPipeline, StableAudioPipeline$"):
        TextToAudio.from_pretrained(unsupported)
    tts = _broken_copy(audioldm2_dir, tmp_path / "tts", text_encoder_2=["transformers", "VitsModel"])
    with pytest.raises(ValueError, match="text-to-speech pipeline .*VitsModel"):
        TextToAudio.from_pretrained(tts)
    missing = _broken_copy(audioldm2_dir, tmp_path / "missing")
    shutil.rmtree(missing / "vocoder")
    with pytest.raises(ValueError, match=r"lacks the component folder\(s\) \['vocoder'\]"):
        TextToAudio.from_pretrained(missing)
    corrupt = _broken_copy(audioldm2_dir, tmp_path / "corrupt")
    (corrupt / "model_index.json").write_text("{not json")
    with pytest.raises(ValueError, match="model_index.json' is not valid JSON"):
        TextToAudio.from_pretrained(corrupt)
    with pytest.raises(ValueError, match="is not a diffusers pipeline folder"):
        DiffusersBackend.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DiffusersBackend.from_pretrained(tmp_path / "nowhere")
    broken_weights = _broken_copy(audioldm2_dir, tmp_path / "weights")
    for path in (broken_weights / "unet").glob("*.safetensors"):
        path.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="AudioLDM2Pipeline could not be loaded"):
        TextToAudio.from_pretrained(broken_weights)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(prompts={"description": "rain", "genre": "jazz"}), r"prompt 0 has attribute\(s\) \['genre'\]"),
        (dict(prompts={"genre": "jazz"}), r"prompt 0 has attribute\(s\) \['genre'\]"),
        (dict(top_k=10), r"\['top_k'\] do not apply to the 'diffusers' backend.*takes steps, cfg_coef"),
        (dict(scheduler="ddim"), r"\['scheduler'\] do not apply to the 'diffusers' backend"),
        (dict(steps=0), r"steps must be an int in \[1, 1000\], got 0"),
        (dict(cfg_coef=-1.0), "cfg_coef must be a finite number >= 0"),
        (dict(negative_prompt="hiss", cfg_coef=1.0), r"negative_prompt needs classifier-free guidance.*cfg_coef=1.0"),
        (dict(negative_prompt=["a", "b"]), "negative_prompt has 2 entries for 1 prompt"),
        (dict(negative_prompt=[3]), "negative_prompt must be a string or a list of strings"),
        (dict(return_codes=True), "return_codes belongs to token backends"),
    ],
)
def test_bad_generate_arguments_are_explained(audioldm2_dir, kwargs, message):
    model = TextToAudio.from_pretrained(audioldm2_dir)
    kwargs = {"prompts": "rain", **kwargs}
    with pytest.raises(ValueError, match=message):
        model.generate(kwargs.pop("prompts"), 0.016, **kwargs)


def test_negative_prompt_is_refused_by_tokenlm_backends(tiny_backend, spm_model_path):
    for backend in (tiny_backend, make_ldm(spm_model_path)):
        refused = rf"sampling argument\(s\) \['negative_prompt'\] do not apply to the {backend.name!r} backend"
        with pytest.raises(ValueError, match=refused):
            TextToAudio(backend).generate("rain", 0.5, negative_prompt="hiss")


@pytest.mark.parametrize(
    "name,text_encoder,needs",
    [("audioldm", "ClapModel", "ClapTextModelWithProjection"),
     ("musicldm", "ClapTextModelWithProjection", "ClapModel")],
)
def test_a_text_encoder_the_pipeline_cannot_use_is_explained(request, tmp_path, name, text_encoder, needs):
    folder = _broken_copy(request.getfixturevalue(CASES[name][0]), tmp_path / name,
                          text_encoder=["transformers", text_encoder])
    class_name = json.loads((folder / "model_index.json").read_text())["_class_name"]
    with pytest.raises(ValueError, match=rf"is a {class_name} with text_encoder '{text_encoder}'.*needs text_encoder "
                                         rf"{needs}$"):
        TextToAudio.from_pretrained(folder)


def test_readme_musicldm_command(musicldm_dir, tmp_path):
    """The README's MusicLDM command, run as written on the tiny MusicLDM (its duration shortened to 0.016 s)."""
    block = re.search(r"```bash\n(.*?)```", readme_diffusers_note(), flags=re.S).group(1)
    argv = shlex.split(block.strip())
    assert argv[:2] == ["tokenlm", "generate"] and argv[argv.index("--model") + 1] == "path/to/musicldm"
    argv[argv.index("--model") + 1] = str(musicldm_dir)
    argv[argv.index("--duration") + 1] = "0.016"
    argv[argv.index("--out") + 1] = str(tmp_path / argv[argv.index("--out") + 1])
    assert cli.main(argv[1:]) == 0
    wav, rate = read_audio(tmp_path / "piano.wav")
    assert rate == 16000 and wav.shape == (1, 256)


@pytest.mark.parametrize("name", ["audioldm2", "audioldm", "musicldm"])
def test_cli_generates_from_a_diffusers_folder(request, name, tmp_path, capsys):
    folder = request.getfixturevalue(CASES[name][0])
    out = tmp_path / "dog.wav"
    args = ["generate", "a dog barks", "--model", str(folder), "--duration", "0.016", "--steps", "2",
            "--cfg", "3", "--seed", "0", "--negative-prompt", "static hiss", "--quiet", "--out", str(out)]
    assert cli.main(args) == 0
    wav, rate = read_audio(out)
    assert rate == 16000 and wav.shape == (1, 256)
    float_out = tmp_path / "dog_float.wav"  # float32 samples, bit for bit: the file holds the API's audio
    assert cli.main(args[:-1] + [str(float_out), "--subtype", "FLOAT"]) == 0
    expected = TextToAudio.from_pretrained(folder).generate("a dog barks", 0.016, steps=2, cfg_coef=3.0, seed=0,
                                                            negative_prompt="static hiss").wav[0]
    assert expected.abs().max() > 0 and torch.equal(read_audio(float_out)[0], expected)
    assert "wrote" in capsys.readouterr().out
    assert cli.main(args + ["--top-k", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tokenlm generate: error:") and "top_k" in err and len(err.splitlines()) == 1

"""audiocraft checkpoint folders: loading, conversion and every refusal (parity itself is in tests/compat).

The checkpoints here are written in audiocraft's exported format (``{"xp.cfg": YAML, "best_state": tensors}``)
with random tensors under audiocraft's names and shapes, so these tests run without audiocraft installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conditioners.base import AudioValue
from conditioners.chroma import ChromaConditioner
from tokenlm.codecs.stereo import StereoEncodecCodec
from tokenlm.convert.audiocraft_config import chroma_settings, condition_routes, conditioner_order, unsupported_options
from tokenlm.convert.audiocraft_lm import convert_audiocraft, load_audiocraft
from tokenlm.lm.sampling import SamplingParams

CARD, N_Q, DIM, LAYERS = 128, 4, 32, 2


def xp_cfg(t5_name: str = "t5-base") -> dict:
    """A MusicGen-shaped xp.cfg at a tiny scale (T5 description + hashed genre, both cross-attended)."""
    return {
        "lm_model": "transformer_lm",
        "codebooks_pattern": {"modeling": "delay", "delay": {"delays": [0, 1, 2, 3], "flatten_first": 0,
                                                             "empty_initial": 0}},
        "transformer_lm": {"dim": DIM, "num_heads": 4, "num_layers": LAYERS, "hidden_scale": 4, "n_q": N_Q,
                           "card": CARD, "activation": "gelu", "norm_first": True, "bias_ff": False,
                           "bias_attn": False, "bias_proj": False, "past_context": None, "causal": True,
                           "custom": False, "memory_efficient": True, "layer_scale": None,
                           "positional_embedding": "sin", "xpos": False, "norm": "layer_norm",
                           "qk_layer_norm": False, "qk_layer_norm_cross": False, "kv_repeat": 1},
        "classifier_free_guidance": {"training_dropout": 0.1, "inference_coef": 3.0},
        "fuser": {"cross_attention_pos_emb": False, "sum": [], "prepend": [], "cross": ["description", "genre"],
                  "input_interpolate": []},
        "conditioners": {
            "description": {"model": "t5", "t5": {"name": t5_name, "finetune": False, "normalize_text": False}},
            "genre": {"model": "lut", "lut": {"n_bins": 64, "dim": 16, "tokenizer": "noop"}},
        },
        "dataset": {"segment_duration": 2.0},
    }


def best_state(t5_width: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors named and shaped like audiocraft's MusicGen LM state dict for :func:`xp_cfg`."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return 0.1 * torch.randn(*shape, generator=gen)

    state = {f"emb.{k}.weight": rand(CARD + 1, DIM) for k in range(N_Q)}
    state |= {f"linears.{k}.weight": rand(CARD, DIM) for k in range(N_Q)}
    state |= {"out_norm.weight": 1 + rand(DIM), "out_norm.bias": rand(DIM)}
    for i in range(LAYERS):
        p = f"transformer.layers.{i}."
        for norm in ("norm1", "norm2", "norm_cross"):
            state |= {f"{p}{norm}.weight": 1 + rand(DIM), f"{p}{norm}.bias": rand(DIM)}
        for attn in ("self_attn", "cross_attention"):
            state |= {f"{p}{attn}.in_proj_weight": rand(3 * DIM, DIM), f"{p}{attn}.out_proj.weight": rand(DIM, DIM)}
        state |= {f"{p}linear1.weight": rand(4 * DIM, DIM), f"{p}linear2.weight": rand(DIM, 4 * DIM)}
    c = "condition_provider.conditioners."
    state |= {f"{c}description.output_proj.weight": rand(DIM, t5_width), f"{c}description.output_proj.bias": rand(DIM)}
    state |= {f"{c}genre.embed.weight": rand(64, 16), f"{c}genre.output_proj.weight": rand(DIM, 16),
              f"{c}genre.output_proj.bias": rand(DIM)}
    return state


def melody_xp_cfg() -> dict:
    """MusicGen-Melody's xp.cfg shape (config/conditioner/chroma2music.yaml) at a tiny scale: chroma and T5
    description prepended, no cross-attention, 16 kHz chroma with 4096-sample windows over a 2 s window."""
    cfg = xp_cfg()
    cfg["sample_rate"] = 16000
    cfg["fuser"] |= {"cross": [], "prepend": ["self_wav", "description"]}
    chroma = {"sample_rate": "${sample_rate}", "n_chroma": 12, "radix2_exp": 12, "argmax": True,
              "match_len_on_eval": False, "eval_wavs": None, "n_eval_wavs": 100, "cache_path": None}
    cfg["conditioners"] = {"self_wav": {"model": "chroma_stem", "chroma_stem": chroma},
                           "description": cfg["conditioners"]["description"]}
    return cfg


def melody_best_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """:func:`best_state` for :func:`melody_xp_cfg`: no cross-attention, no genre, the chroma's projection and
    STFT window."""
    state = {name: t for name, t in best_state(seed=seed).items()
             if "cross" not in name and ".genre." not in name}
    gen = torch.Generator().manual_seed(seed + 1)
    c = "condition_provider.conditioners.self_wav."
    state |= {f"{c}output_proj.weight": torch.randn(DIM, 12, generator=gen),
              f"{c}output_proj.bias": torch.randn(DIM, generator=gen),
              f"{c}chroma.spec.window": torch.hann_window(4096)}
    return state


def stereo_xp_cfg() -> dict:
    """Stereo MusicGen's xp.cfg shape: 2 x 4 interleaved codebooks, each left/right pair delayed together."""
    cfg = xp_cfg()
    cfg["transformer_lm"]["n_q"] = 2 * N_Q
    cfg["codebooks_pattern"]["delay"]["delays"] = [k // 2 for k in range(2 * N_Q)]
    cfg["interleave_stereo_codebooks"] = {"use": True, "per_timestep": False}
    cfg["compression_model_n_q"] = N_Q
    return cfg


def stereo_best_state() -> dict[str, torch.Tensor]:
    state = best_state()
    gen = torch.Generator().manual_seed(5)
    for k in range(N_Q, 2 * N_Q):
        state[f"emb.{k}.weight"] = 0.1 * torch.randn(CARD + 1, DIM, generator=gen)
        state[f"linears.{k}.weight"] = 0.1 * torch.randn(CARD, DIM, generator=gen)
    return state


def write_checkpoint(folder: Path, cfg: dict | None = None, state: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    package = {"xp.cfg": yaml.safe_dump(cfg or xp_cfg()), "best_state": state if state is not None else best_state(),
               "version": "1.3.0", "exported": True}
    torch.save(package, folder / "state_dict.bin")
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True}, folder / "compression_state_dict.bin")
    return folder


@pytest.fixture
def codec_dir(tiny_encodec_dir: Path) -> Path:
    """The tiny EnCodec folder (CARD codes x N_Q codebooks) that ``{"pretrained": ...}`` stands for."""
    return tiny_encodec_dir


def test_load_generate_and_convert(tmp_path: Path, tiny_t5_dir: Path, codec_dir: Path) -> None:
    from tokenlm.api import TextToAudio

    src = write_checkpoint(tmp_path / "musicgen")
    backend = load_audiocraft(src, t5=tiny_t5_dir, encodec=codec_dir)
    cfg = backend.lm.config
    assert (cfg.num_codebooks, cfg.cardinality, cfg.dim, cfg.positional) == (N_Q, CARD, DIM, "sin")
    assert cfg.cross_attention_mask is False  # audiocraft attends to padded condition positions
    assert backend.max_duration == 2.0 and backend.cfg_dropout == 0.1
    assert backend.delays == [0, 1, 2, 3] and backend.attributes == ["description", "genre"]
    torch.testing.assert_close(backend.lm.embeddings[2], best_state()["emb.2.weight"])
    qkv = best_state()["transformer.layers.1.cross_attention.in_proj_weight"]
    torch.testing.assert_close(backend.lm.blocks[1].cross_attn.kv.weight, qkv[DIM:])

    prompts = [{"description": "soft rain", "genre": "ambient"}, {"description": "a loud drum solo"}]
    codes = backend.generate_tokens(prompts, 0.2, SamplingParams(temperature=0.0))
    assert codes.shape == (2, N_Q, 10)
    out = convert_audiocraft(src, tmp_path / "converted", t5=tiny_t5_dir, encodec=codec_dir)
    model = TextToAudio.from_pretrained(out, dtype="float32")  # exact: the direct load is float32
    again = model.backend.generate_tokens(prompts, 0.2, SamplingParams(temperature=0.0))
    assert torch.equal(codes, again)


def test_cli_convert(tmp_path: Path, tiny_t5_dir: Path, codec_dir: Path) -> None:
    src = write_checkpoint(tmp_path / "musicgen")
    cmd = [sys.executable, "-m", "tokenlm.cli", "convert", "audiocraft", str(src), str(tmp_path / "out"),
           "--t5", str(tiny_t5_dir), "--encodec", str(codec_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "config.json").is_file() and (tmp_path / "out" / "model.safetensors").is_file()
    wrong = subprocess.run(cmd[:7] + ["--bandwidth", "6"], capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and "--bandwidth applies to encodec" in wrong.stderr


def _mutated(**changes: object) -> dict:
    cfg = xp_cfg()
    for key, value in changes.items():
        node = cfg
        *parents, leaf = key.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return cfg


def test_every_unsupported_option_is_listed() -> None:
    from omegaconf import OmegaConf

    for supported in (xp_cfg(), melody_xp_cfg(), stereo_xp_cfg()):
        assert unsupported_options(OmegaConf.create(supported)) == []
    cfg = _mutated(transformer_lm__norm_first=False, transformer_lm__xpos=True,
                   transformer_lm__positional_embedding="rope_2d", fuser__input_interpolate=["genre"],
                   codebooks_pattern__modeling="unroll", transformer_lm__layer_scale=0.1, transformer_lm__n_q=5,
                   compression_model_n_q=4)
    cfg["conditioners"]["genre"]["lut"]["tokenizer"] = "whitespace"
    cfg["interleave_stereo_codebooks"] = {"use": True, "per_timestep": True}
    cfg["conditioners"]["clap"] = {"model": "clap", "clap": {}}
    problems = unsupported_options(OmegaConf.create(cfg))
    for expected in ("norm_first=False", "xpos=True", "'rope_2d'", "fuser.input_interpolate=['genre']",
                     "modeling='unroll'", "layer_scale=0.1", "tokenizer='whitespace'",
                     "interleave_stereo_codebooks.per_timestep=True", "n_q=5 with interleave_stereo_codebooks",
                     "compression_model_n_q=4 (the codec's codebooks per channel must be transformer_lm.n_q=5 / 2",
                     "conditioners.clap.model='clap'", "conditioner 'clap' is routed nowhere"):
        assert any(expected in p for p in problems), (expected, problems)


def test_every_unsupported_melody_option_is_listed() -> None:
    from omegaconf import OmegaConf

    cfg = melody_xp_cfg()
    cfg["conditioners"]["self_wav"]["chroma_stem"] |= {"eval_wavs": "egs/musiccaps", "norm": 2, "winlen": 2048,
                                                       "nfft": 4096, "demucs": "mdx"}
    cfg["fuser"] |= {"prepend": ["description"], "cross": ["self_wav"]}
    cfg["conditioners"]["melody"] = {"model": "lut", "lut": {"n_bins": 8, "dim": 4, "tokenizer": "noop"}}
    cfg["fuser"]["sum"] = ["melody"]
    del cfg["dataset"]
    problems = unsupported_options(OmegaConf.create(cfg))
    for expected in ("eval_wavs='egs/musiccaps'", "norm=2", "winlen=2048 with nfft=4096", "chroma_stem.demucs",
                     "fuser.cross has the chroma condition 'self_wav'", "dataset.segment_duration=None",
                     "both be tokenlm's attribute 'melody'", "fuser.sum has 'melody' after the prepended"):
        assert any(expected in p for p in problems), (expected, problems)


def test_unsupported_variant_is_refused_with_the_list(tmp_path: Path, tiny_t5_dir: Path) -> None:
    cfg = _mutated(fuser__input_interpolate=["genre"], transformer_lm__kv_repeat=2)
    src = write_checkpoint(tmp_path / "interpolated", cfg=cfg)
    with pytest.raises(ValueError, match=r"cannot reproduce exactly:\n.*kv_repeat=2[\s\S]*input_interpolate"):
        load_audiocraft(src, t5=tiny_t5_dir)


def test_melody_layout_follows_audiocraft() -> None:
    """audiocraft's fuser puts each prepended condition in front of those before it in its walk (text
    conditioners, then waveform ones): the chroma comes first whatever ``fuser.prepend`` lists."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(melody_xp_cfg())
    assert conditioner_order(cfg) == ["self_wav", "description"]
    assert condition_routes(cfg) == {"melody": "prepend", "description": "prepend"}
    raw = melody_xp_cfg()
    raw["conditioners"] = dict(reversed(raw["conditioners"].items()))  # listed description first
    raw["conditioners"]["genre"] = {"model": "lut", "lut": {"n_bins": 8, "dim": 4, "tokenizer": "noop"}}
    raw["fuser"] |= {"prepend": ["description", "self_wav"], "cross": ["genre"]}
    assert conditioner_order(OmegaConf.create(raw)) == ["self_wav", "genre", "description"]
    released = melody_xp_cfg() | {"sample_rate": 32000, "dataset": {"segment_duration": 30.0}}
    released["conditioners"]["self_wav"]["chroma_stem"]["radix2_exp"] = 14
    settings = chroma_settings(OmegaConf.create(released), "self_wav")
    assert settings == {"sample_rate": 32000, "n_fft": 16384, "hop_length": 4096, "num_chroma": 12,
                        "chroma_length": 235, "chunk_length": (234 * 4096 + 8192) / 32000, "argmax": True,
                        "null_chroma": "silence"}  # transformers' MusicGen-Melody has chroma_length 235 too


def test_melody_checkpoint_loads_generates_and_converts(tmp_path: Path, tiny_t5_dir: Path, codec_dir: Path) -> None:
    from tokenlm.api import TextToAudio

    src = write_checkpoint(tmp_path / "melody", cfg=melody_xp_cfg(), state=melody_best_state())
    backend = load_audiocraft(src, t5=tiny_t5_dir, encodec=codec_dir)
    cfg = backend.lm.config
    assert (cfg.cross_attention, cfg.prefix_positions, cfg.prefix_padding) == (False, "shared", "attended")
    assert backend.attributes == ["melody", "description"] and backend.cfg_dropout == 0.1
    chroma = backend.conditioning.conditioners["melody"]
    assert isinstance(chroma, ChromaConditioner)
    assert (chroma.chroma_length, chroma.n_fft, chroma.hop_length, chroma.null_chroma) == (32, 4096, 1024, "silence")
    weight = melody_best_state()["condition_provider.conditioners.self_wav.output_proj.weight"]
    torch.testing.assert_close(chroma.proj.weight, weight)

    t = torch.arange(16000) / 16000
    tune = AudioValue((0.5 * torch.sin(2 * torch.pi * 440.0 * t))[None], 16000)
    prompts = [{"description": "soft rain", "melody": tune}, {"description": "a loud drum solo"}]
    codes = backend.generate_tokens(prompts, 0.2, SamplingParams(temperature=0.0))
    assert codes.shape == (2, N_Q, 10)
    out = convert_audiocraft(src, tmp_path / "converted", t5=tiny_t5_dir, encodec=codec_dir)
    model = TextToAudio.from_pretrained(out, dtype="float32")
    assert model.backend.lm.config == cfg
    assert torch.equal(codes, model.backend.generate_tokens(prompts, 0.2, SamplingParams(temperature=0.0)))


def test_melody_checkpoint_window_must_match_the_config(tmp_path: Path, tiny_t5_dir: Path, codec_dir: Path) -> None:
    state = melody_best_state()
    state["condition_provider.conditioners.self_wav.chroma.spec.window"] = torch.hann_window(16384)
    src = write_checkpoint(tmp_path / "melody", cfg=melody_xp_cfg(), state=state)
    with pytest.raises(ValueError, match=r"window \(shape \(16384,\)\) is not the Hann window of 4096 samples"):
        load_audiocraft(src, t5=tiny_t5_dir, encodec=codec_dir)


def test_stereo_checkpoint_loads_with_the_stereo_codec(tmp_path: Path, tiny_t5_dir: Path, codec_dir: Path) -> None:
    src = write_checkpoint(tmp_path / "stereo", cfg=stereo_xp_cfg(), state=stereo_best_state())
    backend = load_audiocraft(src, t5=tiny_t5_dir, encodec=codec_dir)
    assert isinstance(backend.codec, StereoEncodecCodec)
    assert (backend.codec.channels, backend.codec.num_codebooks, backend.lm.config.num_codebooks) == (2, 8, 8)
    assert backend.delays == [0, 0, 1, 1, 2, 2, 3, 3]
    codes = backend.generate_tokens([{"description": "soft rain"}], 0.2, SamplingParams(temperature=0.0))
    assert codes.shape == (1, 2 * N_Q, 10) and backend.decode(codes).shape == (1, 2, 3200)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("linears.3.weight"), "lacks the tensor 'linears.3.weight'"),
        (lambda s: s.__setitem__("transformer.layers.0.self_attn.q_layer_norm.weight", torch.ones(DIM)),
         "does not know.*q_layer_norm"),
        (lambda s: s.__setitem__("emb.0.weight", torch.zeros(CARD, DIM)), r"'emb.0.weight' has shape \(128, 32\)"),
        (lambda s: s.__setitem__("condition_provider.conditioners.description.output_proj.weight",
                                 torch.zeros(DIM, 48)), "d_model=32.*expects 48"),
    ],
)
def test_tensors_must_match_the_config(tmp_path: Path, tiny_t5_dir: Path, codec_dir: Path, edit, message: str) -> None:
    state = best_state()
    edit(state)
    src = write_checkpoint(tmp_path / "ckpt", state=state)
    with pytest.raises(ValueError, match=message):
        load_audiocraft(src, t5=tiny_t5_dir, encodec=codec_dir)


class NotWeights:
    """A class a weights-only load must refuse to unpickle."""


def test_bad_files(tmp_path: Path, tiny_t5_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_audiocraft(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="lacks state_dict.bin, compression_state_dict.bin"):
        load_audiocraft(tmp_path / "empty")
    src = write_checkpoint(tmp_path / "ckpt")
    data = (src / "state_dict.bin").read_bytes()
    (src / "state_dict.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_audiocraft(src, t5=tiny_t5_dir)
    torch.save([1, 2, 3], src / "state_dict.bin")
    with pytest.raises(ValueError, match="not an exported audiocraft checkpoint"):
        load_audiocraft(src, t5=tiny_t5_dir)
    torch.save({"xp.cfg": yaml.safe_dump(xp_cfg()), "best_state": {"emb.0.weight": "text"}}, src / "state_dict.bin")
    with pytest.raises(ValueError, match="entry 'emb.0.weight' is a str, not a tensor"):
        load_audiocraft(src, t5=tiny_t5_dir)
    torch.save({"xp.cfg": yaml.safe_dump(xp_cfg()), "best_state": NotWeights()}, src / "state_dict.bin")
    with pytest.raises(ValueError, match="weights_only=True and never runs pickled code"):
        load_audiocraft(src, t5=tiny_t5_dir)


def test_missing_t5_names_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    src = write_checkpoint(tmp_path / "ckpt", cfg=xp_cfg("t5-base"))
    with pytest.raises(ValueError, match=r"'t5-base'.*not in the local Hugging Face cache.*google-t5/t5-base.*--t5"):
        load_audiocraft(src)


def _cache_repo(cache: Path, repo: str, files: Path) -> None:
    """Place ``files`` in a Hugging Face hub cache as the snapshot of ``repo`` (the layout huggingface_hub reads)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for item in files.iterdir():
        (snapshot / item.name).write_bytes(item.read_bytes())
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0" * 40)


def test_release_folder_loads_from_the_local_hf_cache(
    tmp_path: Path, tiny_t5_dir: Path, codec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TextToAudio.from_pretrained on an audiocraft release finds the T5 (by its xp.cfg name) and the pretrained
    EnCodec in the local Hugging Face cache, as audiocraft itself would after a download."""
    from huggingface_hub import constants

    from tokenlm.api import TextToAudio

    cache = tmp_path / "hub"
    _cache_repo(cache, "google-t5/t5-base", tiny_t5_dir)
    _cache_repo(cache, "facebook/encodec_32khz", codec_dir)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    src = write_checkpoint(tmp_path / "musicgen", cfg=xp_cfg("t5-base"))
    model = TextToAudio.from_pretrained(src, dtype="float32")  # exact: the direct load is float32
    direct = load_audiocraft(src, t5=tiny_t5_dir, encodec=codec_dir)
    audio = model.generate("soft rain", duration=0.2, temperature=0.0, return_codes=True)
    expected = direct.generate_tokens([{"description": "soft rain"}], 0.2, SamplingParams(temperature=0.0))
    assert audio.wav.shape == (1, 1, 3200) and torch.equal(audio.codes, expected)


def test_folder_of_unknown_kind_names_what_loads(tmp_path: Path) -> None:
    from tokenlm.api import TextToAudio

    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no config.json.*audiocraft release \(state_dict.bin.*model_index.json"):
        TextToAudio.from_pretrained(tmp_path)

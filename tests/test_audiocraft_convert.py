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

from tokenlm.convert.audiocraft_config import unsupported_options
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

    assert unsupported_options(OmegaConf.create(xp_cfg())) == []
    cfg = _mutated(transformer_lm__norm_first=False, transformer_lm__xpos=True,
                   transformer_lm__positional_embedding="rope_2d", fuser__prepend=["self_wav"],
                   codebooks_pattern__modeling="unroll", transformer_lm__layer_scale=0.1)
    cfg["conditioners"]["genre"]["lut"]["tokenizer"] = "whitespace"
    cfg["interleave_stereo_codebooks"] = {"use": True, "per_timestep": False}
    problems = unsupported_options(OmegaConf.create(cfg))
    for expected in ("norm_first=False", "xpos=True", "'rope_2d'", "fuser.prepend=['self_wav']",
                     "modeling='unroll'", "layer_scale=0.1", "tokenizer='whitespace'",
                     "interleave_stereo_codebooks.use=True"):
        assert any(expected in p for p in problems), (expected, problems)


def test_unsupported_variant_is_refused_with_the_list(tmp_path: Path, tiny_t5_dir: Path) -> None:
    src = write_checkpoint(tmp_path / "melody", cfg=_mutated(fuser__prepend=["self_wav"], transformer_lm__kv_repeat=2))
    with pytest.raises(ValueError, match=r"cannot reproduce exactly:\n.*kv_repeat=2[\s\S]*MusicGen-Melody"):
        load_audiocraft(src, t5=tiny_t5_dir)


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

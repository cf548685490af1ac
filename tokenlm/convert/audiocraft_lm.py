"""Load audiocraft MusicGen / AudioGen checkpoints as a tokenlm :class:`~tokenlm.lm.backend.LMBackend`.

An audiocraft release folder holds ``state_dict.bin`` (``{"xp.cfg": <YAML>, "best_state": <LM state dict>}``) and
``compression_state_dict.bin`` (a full EnCodec package, or ``{"pretrained": "facebook/encodec_32khz"}`` naming a
Hugging Face EnCodec). Both are read with ``torch.load(weights_only=True)``: nothing pickled is ever executed.

The architecture comes from ``xp.cfg``; every variant tokenlm cannot reproduce exactly is refused with a list of
what is unsupported (never silently different outputs), every tensor of the checkpoint must be used and every
tokenlm parameter filled.

=====================================================  =====================================================
audiocraft ``LMModel``                                 tokenlm
=====================================================  =====================================================
``emb.{k}`` ``[card + 1, D]``                          ``lm.embeddings[k]``
``linears.{k}`` ``[card, D]`` (+ bias)                 ``lm.heads[k]`` (``lm.head_bias[k]``)
``transformer.layers.{i}.norm1`` / ``norm_cross``      ``lm.blocks[i].norm_self`` / ``norm_cross``
``... .norm2``                                         ``lm.blocks[i].norm_ffn``
``... .self_attn.[mha.]in_proj_*`` (q|k|v rows)        ``lm.blocks[i].self_attn.qkv``
``... .cross_attention.[mha.]in_proj_*``               ``cross_attn.q`` (rows q) and ``cross_attn.kv`` (k|v)
``... .linear1`` / ``linear2``                         ``fc1`` / ``fc2``
``out_norm``                                           ``lm.out_norm``
``condition_provider.conditioners.{name}`` (t5)        :class:`~conditioners.text.t5.T5Conditioner`
``condition_provider.conditioners.{name}`` (lut/noop)  :class:`~conditioners.hashed_lut.HashedLUTConditioner`
``... .{name}.output_proj`` (chroma_stem)              :class:`~conditioners.chroma.ChromaConditioner` ``proj``
                                                       (``self_wav`` becomes the attribute ``melody``)
=====================================================  =====================================================

Semantics kept from audiocraft: its cross-attention does not mask padding (padded condition positions are zero
vectors that take part in the softmax), so the converted LM has ``cross_attention_mask=False``; its null condition
for classifier-free guidance is an all-zero embedding, which is what tokenlm's conditioners give for ``None``.
RoPE rotates adjacent feature pairs (``rope_interleaved=True``); positions are those of a full, non-streaming
forward pass at every generation step.

**MusicGen-Melody** (``fuser.prepend``, a ``chroma_stem`` conditioner named ``self_wav``): prepended conditions
go before the audio in audiocraft's fuser order (the chroma, then the description: see
:mod:`~tokenlm.convert.audiocraft_config`); positions count from the first prepended token
(``prefix_positions="shared"``) and the description's padding stays in place as zero vectors that are attended to
(``prefix_padding="attended"``); without cross-attended conditions the LM has no cross-attention. The chroma is
computed as audiocraft's ``MusicGen.get_pretrained`` runs it (``match_len_on_eval`` forced on): always the
training window's number of frames, a short melody repeated, never masked, "no melody" the chroma of silence.
audiocraft first separates the melody's vocals and "other" stems with Demucs (``htdemucs``); no Demucs weights
are available offline, so **the converted model takes the chroma of the whole mix** it is given, as transformers'
MusicGen-Melody does with a waveform: give it a melody without drums and bass for audiocraft's behaviour.

**Stereo MusicGen** (``interleave_stereo_codebooks.use``): the LM predicts both channels' codebooks interleaved
(left 0, right 0, left 1, ...) with the delays of ``codebooks_pattern.delay.delays`` (0, 0, 1, 1, ... in the
releases); the codec is :class:`~tokenlm.codecs.stereo.StereoEncodecCodec` around the mono EnCodec, which codes
each channel with ``n_q / 2`` codebooks.

Example:
    >>> backend = load_audiocraft("/models/musicgen-small", t5="/models/t5-base")  # doctest: +SKIP
    >>> convert_audiocraft("/models/audiogen-medium", "checkpoints/audiogen", t5="/models/t5-large")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from transformers import T5EncoderModel

from conditioners.base import Conditioner
from conditioners.chroma import ChromaConditioner
from conditioners.hashed_lut import HashedLUTConditioner
from conditioners.text.frozen import load_pretrained, load_tokenizer
from conditioners.text.t5 import T5Conditioner
from tokenlm.codecs.base import Codec
from tokenlm.codecs.stereo import StereoEncodecCodec
from tokenlm.common.hf import quiet_hf_loading
from tokenlm.convert.audiocraft_config import (
    chroma_settings,
    codebook_pattern,
    condition_routes,
    conditioner_order,
    lm_config,
    read_audiocraft_package,
    select,
    stereo,
    tokenlm_attribute,
    training_window,
    unsupported_options,
)
from tokenlm.convert.encodec_audiocraft import encodec_from_audiocraft
from tokenlm.convert.torch_files import TensorPool, load_strict, load_torch_file
from tokenlm.lm.backend import LMBackend
from tokenlm.lm.model import LMConfig, LMModel

LM_FILE = "state_dict.bin"
COMPRESSION_FILE = "compression_state_dict.bin"
#: Hugging Face repositories an audiocraft T5 name may be cached under, tried in order
T5_REPOSITORIES = {"t5-": "google-t5/{name}", "google/": "{name}"}

_CONDITIONERS = "condition_provider.conditioners."


# ------------------------------------------------------------------------------------------------ weights


def _attention_name(pool: TensorPool, prefix: str, param: str) -> str:
    """``prefix.param`` (custom attention) or ``prefix.mha.param`` (torch ``nn.MultiheadAttention``)."""
    mha = f"{prefix}.mha.{param}"
    return mha if pool.has(mha) else f"{prefix}.{param}"


def _take_attention(pool: TensorPool, prefix: str, dim: int, bias: bool) -> dict[str, torch.Tensor]:
    """The packed q|k|v projection and output projection of one audiocraft attention module."""
    out = {"in_w": pool.take(_attention_name(pool, prefix, "in_proj_weight"), (3 * dim, dim))}  # [3D, D]
    out["out_w"] = pool.take(_attention_name(pool, prefix, "out_proj.weight"), (dim, dim))
    if bias:
        out["in_b"] = pool.take(_attention_name(pool, prefix, "in_proj_bias"), (3 * dim,))
        out["out_b"] = pool.take(_attention_name(pool, prefix, "out_proj.bias"), (dim,))
    return out


def _drop_rope_tables(pool: TensorPool, config: LMConfig) -> None:
    """audiocraft stores RoPE frequencies as buffers; they must be the ones tokenlm recomputes from the config."""
    head_dim = config.dim // config.num_heads
    expected = 1.0 / (config.max_period ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    for name in pool.names():
        if name.endswith("rope.frequencies"):
            stored = pool.take(name)
            if stored.shape != expected.shape or not torch.allclose(stored.float(), expected, rtol=1e-5):
                raise ValueError(
                    f"the RoPE frequencies stored in {name!r} differ from head_dim={head_dim}, "
                    f"max_period={config.max_period} of xp.cfg: the checkpoint and its config disagree"
                )


def lm_state_dict(pool: TensorPool, config: LMConfig) -> dict[str, torch.Tensor]:
    """The audiocraft LM tensors of ``pool`` renamed into :class:`LMModel`'s layout (shapes checked)."""
    K, card, D, F = config.num_codebooks, config.cardinality, config.dim, config.ffn_dim
    state = {
        "embeddings": torch.stack([pool.take(f"emb.{k}.weight", (card + 1, D)) for k in range(K)]),  # [K, card+1, D]
        "heads": torch.stack([pool.take(f"linears.{k}.weight", (card, D)) for k in range(K)]),  # [K, card, D]
        **({"head_bias": torch.stack([pool.take(f"linears.{k}.bias", (card,)) for k in range(K)])}
           if config.bias_heads else {}),  # [K, card]
        "out_norm.weight": pool.take("out_norm.weight", (D,)),
        "out_norm.bias": pool.take("out_norm.bias", (D,)),
    }
    norms = {"norm_self": "norm1", "norm_ffn": "norm2"}
    if config.cross_attention:
        norms["norm_cross"] = "norm_cross"
    for i in range(config.num_layers):
        src, dst = f"transformer.layers.{i}.", f"blocks.{i}."
        for ours, theirs in norms.items():
            for param in ("weight", "bias"):
                state[f"{dst}{ours}.{param}"] = pool.take(f"{src}{theirs}.{param}", (D,))
        attn = _take_attention(pool, f"{src}self_attn", D, config.bias_attn)
        state[f"{dst}self_attn.qkv.weight"], state[f"{dst}self_attn.out.weight"] = attn["in_w"], attn["out_w"]
        if config.bias_attn:
            state[f"{dst}self_attn.qkv.bias"], state[f"{dst}self_attn.out.bias"] = attn["in_b"], attn["out_b"]
        if config.cross_attention:
            cross = _take_attention(pool, f"{src}cross_attention", D, config.bias_attn)
            state[f"{dst}cross_attn.q.weight"], state[f"{dst}cross_attn.kv.weight"] = cross["in_w"].split([D, 2 * D])
            state[f"{dst}cross_attn.out.weight"] = cross["out_w"]
            if config.bias_attn:
                state[f"{dst}cross_attn.q.bias"], state[f"{dst}cross_attn.kv.bias"] = cross["in_b"].split([D, 2 * D])
                state[f"{dst}cross_attn.out.bias"] = cross["out_b"]
        for ours, theirs, shape in (("fc1", "linear1", (F, D)), ("fc2", "linear2", (D, F))):
            state[f"{dst}{ours}.weight"] = pool.take(f"{src}{theirs}.weight", shape)
            if config.bias_ffn:
                state[f"{dst}{ours}.bias"] = pool.take(f"{src}{theirs}.bias", (shape[0],))
    return state


# -------------------------------------------------------------------------------------------- conditioners


def find_t5_folder(name: str) -> Path:
    """The local Hugging Face cache folder of the T5 named ``name`` in ``xp.cfg`` (never downloads).

    Raises:
        ValueError: the model is not in the local cache; the message says how to pass a folder instead.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    candidates = [name] + [pattern.format(name=name) for start, pattern in T5_REPOSITORIES.items()
                           if name.startswith(start)]
    for repo in dict.fromkeys(candidates):
        try:
            return Path(snapshot_download(repo_id=repo, local_files_only=True))
        except (LocalEntryNotFoundError, ValueError, OSError):
            continue
    raise ValueError(
        f"the T5 text encoder {name!r} named in xp.cfg is not in the local Hugging Face cache (looked for "
        f"{', '.join(dict.fromkeys(candidates))}); its weights are not inside audiocraft checkpoints: pass a local "
        "folder holding it (t5=PATH / --t5 PATH)"
    )


def _t5_conditioner(
    name: str, options: dict[str, Any], pool: TensorPool, dim: int, t5: str | Path | None
) -> T5Conditioner:
    prefix = f"{_CONDITIONERS}{name}."
    folder = Path(t5).expanduser() if t5 is not None else find_t5_folder(str(options.get("name")))
    with quiet_hf_loading():
        encoder = load_pretrained(T5EncoderModel, folder, "T5")
        tokenizer = load_tokenizer(folder, "T5")
    d_model = int(encoder.config.d_model)
    finetuned = pool.take_prefix(f"{prefix}t5.")
    if finetuned:  # a fine-tuned T5 is saved inside the checkpoint
        finetuned.setdefault("encoder.embed_tokens.weight", finetuned.get("shared.weight"))
        load_strict(encoder, finetuned, f"audiocraft fine-tuned T5 of {name!r}")
    weight = pool.take(f"{prefix}output_proj.weight")
    if tuple(weight.shape) != (dim, d_model):
        raise ValueError(
            f"the T5 folder {str(folder)!r} has d_model={d_model}, but the checkpoint's {name!r} projection "
            f"{tuple(weight.shape)} expects {weight.shape[1]} (xp.cfg names {options.get('name')!r}): pass the T5 "
            "the model was trained with"
        )
    conditioner = T5Conditioner(
        name, dim, encoder=encoder, tokenizer=tokenizer, max_length=None, project=True,
        finetune=bool(options.get("finetune", False)),
    )  # no truncation, like audiocraft
    bias = pool.take(f"{prefix}output_proj.bias", (dim,))
    load_strict(conditioner.output_proj, {"weight": weight, "bias": bias}, f"audiocraft {name!r} projection")
    return conditioner


def _lut_conditioner(name: str, options: dict[str, Any], pool: TensorPool, dim: int) -> HashedLUTConditioner:
    prefix = f"{_CONDITIONERS}{name}."
    bins, width = int(options["n_bins"]), int(options["dim"])
    conditioner = HashedLUTConditioner(name, dim, bins=bins, dim=width)
    state = {
        "embed.weight": pool.take(f"{prefix}embed.weight", (bins, width)),
        "output_proj.weight": pool.take(f"{prefix}output_proj.weight", (dim, width)),
        "output_proj.bias": pool.take(f"{prefix}output_proj.bias", (dim,)),
    }
    load_strict(conditioner, state, f"audiocraft {name!r} look-up table")
    return conditioner


def _chroma_conditioner(cfg: DictConfig, name: str, pool: TensorPool, dim: int) -> ChromaConditioner:
    """A ``chroma_stem`` conditioner: the chroma analysis of :func:`chroma_settings`, ``output_proj`` as ``proj``."""
    prefix = f"{_CONDITIONERS}{name}."
    conditioner = ChromaConditioner(tokenlm_attribute(name), dim, **chroma_settings(cfg, name))
    window = pool.take(f"{prefix}chroma.spec.window") if pool.has(f"{prefix}chroma.spec.window") else None
    expected = torch.hann_window(conditioner.n_fft)
    if window is not None and (window.shape != expected.shape or not torch.allclose(window.float(), expected)):
        raise ValueError(
            f"the STFT window stored in {prefix}chroma.spec.window (shape {tuple(window.shape)}) is not the Hann "
            f"window of {conditioner.n_fft} samples that xp.cfg's chroma settings give: the checkpoint and its config "
            "disagree"
        )
    state = {"weight": pool.take(f"{prefix}output_proj.weight", (dim, conditioner.num_chroma)),
             "bias": pool.take(f"{prefix}output_proj.bias", (dim,))}
    load_strict(conditioner.proj, state, f"audiocraft {name!r} chroma projection")
    return conditioner


def build_conditioners(
    cfg: DictConfig, pool: TensorPool, dim: int, t5: str | Path | None = None
) -> tuple[list[Conditioner], dict[str, str]]:
    """tokenlm conditioners (weights from ``pool``) in the order that concatenates each route's conditions as
    audiocraft does (:func:`conditioner_order`), and their routes (keyed by tokenlm attribute)."""
    conditioners: list[Conditioner] = []
    specs = select(cfg, "conditioners", {}) or {}
    for name in conditioner_order(cfg):
        model = specs[name]["model"]
        options = dict(specs[name][model] or {})
        if model == "t5":
            conditioners.append(_t5_conditioner(name, options, pool, dim, t5))
        elif model == "lut":
            conditioners.append(_lut_conditioner(name, options, pool, dim))
        else:
            conditioners.append(_chroma_conditioner(cfg, name, pool, dim))
    return conditioners, condition_routes(cfg)


# ----------------------------------------------------------------------------------------------- loading


def _codec(folder: Path, num_codebooks: int, encodec: str | Path | None, two_channels: bool = False) -> Codec:
    """The compression model with the LM's ``num_codebooks`` (per channel pair: a stereo codec of the mono one)."""
    package = load_torch_file(folder / COMPRESSION_FILE, "audiocraft compression checkpoint")
    if not isinstance(package, dict):
        raise ValueError(
            f"audiocraft compression checkpoint {str(folder / COMPRESSION_FILE)!r} holds a {type(package).__name__}, "
            "not a dict ({'xp.cfg', 'best_state'} or {'pretrained'})"
        )
    per_channel = num_codebooks // 2 if two_channels else num_codebooks
    mono = encodec_from_audiocraft(package, pretrained_dir=encodec, num_codebooks=per_channel)
    return StereoEncodecCodec(mono) if two_channels else mono


def _check_folder(src: str | Path) -> Path:
    folder = Path(src).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"audiocraft checkpoint folder {str(folder)!r} does not exist")
    missing = [name for name in (LM_FILE, COMPRESSION_FILE) if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"{str(folder)!r} is not an audiocraft checkpoint folder: it lacks {', '.join(missing)} (a MusicGen / "
            f"AudioGen release holds {LM_FILE} and {COMPRESSION_FILE})"
        )
    return folder


def load_audiocraft(
    src: str | Path,
    *,
    t5: str | Path | None = None,
    encodec: str | Path | None = None,
    device: str | torch.device | None = None,
) -> LMBackend:
    """Build a tokenlm LM backend from an audiocraft MusicGen / AudioGen folder (never downloads).

    Args:
        src: folder with ``state_dict.bin`` and ``compression_state_dict.bin``.
        t5: local Hugging Face folder of the T5 named in ``xp.cfg`` (default: looked up in the local HF cache).
        encodec: local Hugging Face EnCodec folder for a compression checkpoint that only names a pretrained
            model (``{"pretrained": "facebook/encodec_32khz"}``; default: the local HF cache).
        device: where to put the backend (default CPU).
    Returns:
        an :class:`LMBackend` in eval mode with audiocraft's pattern, training window
        (``dataset.segment_duration``) and condition dropout; a MusicGen-Melody takes ``melody`` (the chroma of
        the whole mix: no Demucs stem separation offline), a stereo MusicGen decodes two channels.
    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: unreadable or non-weight files, an unsupported architecture variant (all of them listed),
            tensors that do not match ``xp.cfg``, tensors nothing maps, a T5 or EnCodec that cannot be found.
    """
    folder = _check_folder(src)
    cfg, state = read_audiocraft_package(folder / LM_FILE, "audiocraft LM checkpoint")
    problems = unsupported_options(cfg)
    if problems:
        raise ValueError(
            f"{str(folder)!r} is an audiocraft LM variant tokenlm cannot reproduce exactly:\n  - "
            + "\n  - ".join(problems)
        )
    config = lm_config(cfg)
    pool = TensorPool(state, "audiocraft LM checkpoint")
    lm = LMModel(config)
    load_strict(lm, lm_state_dict(pool, config), "audiocraft LM")
    _drop_rope_tables(pool, config)
    conditioners, routes = build_conditioners(cfg, pool, config.dim, t5)
    pool.check_consumed()
    codec = _codec(folder, config.num_codebooks, encodec, two_channels=stereo(cfg))
    pattern, delays = codebook_pattern(cfg, config.num_codebooks)
    backend = LMBackend(
        lm, codec, conditioners, routes=routes, pattern=pattern, delays=delays, max_duration=training_window(cfg),
        cfg_dropout=float(select(cfg, "classifier_free_guidance.training_dropout", 0.0)),
    )
    backend.eval()
    return backend.to(device) if device is not None else backend


def convert_audiocraft(
    src: str | Path, dst: str | Path, *, t5: str | Path | None = None, encodec: str | Path | None = None
) -> Path:
    """Convert an audiocraft MusicGen / AudioGen folder into a tokenlm checkpoint folder ``dst``; returns ``dst``."""
    source, target = Path(src).expanduser(), Path(dst).expanduser()
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise ValueError(f"the destination {str(target)!r} is the audiocraft folder itself; choose another folder")
    backend = load_audiocraft(source, t5=t5, encodec=encodec)
    with quiet_hf_loading():
        return backend.save_pretrained(target)

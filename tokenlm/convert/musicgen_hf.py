"""Load Hugging Face transformers MusicGen folders as a tokenlm :class:`~tokenlm.lm.backend.LMBackend`.

A folder written by ``MusicgenForConditionalGeneration.save_pretrained`` (with the processor's tokenizer files
saved beside it, as ``MusicgenProcessor.save_pretrained`` does) maps one to one onto tokenlm's modules:

================================================  ==========================================================
transformers MusicGen                             tokenlm
================================================  ==========================================================
``decoder.model.decoder.embed_tokens.{k}``        ``lm.embeddings[k]`` ``[card + 1, D]`` (id ``card`` = start)
``decoder.lm_heads.{k}``                          ``lm.heads[k]`` ``[card, D]``
``layers.{i}.self_attn_layer_norm``               ``lm.blocks[i].norm_self``
``layers.{i}.self_attn.{q,k,v}_proj``             ``lm.blocks[i].self_attn.qkv`` (rows q; k; v)
``layers.{i}.self_attn.out_proj``                 ``lm.blocks[i].self_attn.out``
``layers.{i}.encoder_attn_layer_norm``            ``lm.blocks[i].norm_cross``
``layers.{i}.encoder_attn.q_proj``                ``lm.blocks[i].cross_attn.q``
``layers.{i}.encoder_attn.{k,v}_proj``            ``lm.blocks[i].cross_attn.kv`` (rows k; v)
``layers.{i}.encoder_attn.out_proj``              ``lm.blocks[i].cross_attn.out``
``layers.{i}.final_layer_norm`` / ``fc1``/``fc2``  ``lm.blocks[i].norm_ffn`` / ``fc1`` / ``fc2``
``decoder.model.decoder.layer_norm``              ``lm.out_norm``
``text_encoder`` (T5 encoder) + tokenizer         :class:`~conditioners.text.t5.T5Conditioner` ``encoder``
``enc_to_dec_proj`` (when present)                ``T5Conditioner.output_proj`` (identity otherwise)
``audio_encoder`` (EnCodec)                       :class:`~tokenlm.codecs.encodec.EncodecCodec`
================================================  ==========================================================

**MusicGen-Melody** (``model_type`` ``musicgen_melody``) has no cross-attention: it prepends the chroma of a
melody, projected by ``audio_enc_to_dec_proj``, then the projected text, to the decoder's input. tokenlm reads it
as two conditioners routed to ``prepend``: :class:`~conditioners.chroma.ChromaConditioner` (attribute ``melody``,
the feature extractor's settings from ``preprocessor_config.json``) then the T5 conditioner. The LM counts
positions from the first prepended token (``prefix_positions="shared"``) and attends to the text's padding as zero
vectors (``prefix_padding="attended"``), as transformers does. Without a melody the chroma is that of silence,
transformers' null melody.

**Stereo MusicGen** (decoder ``audio_channels=2``) predicts 2K codebooks, left and right interleaved, each pair
delayed together (delays 0, 0, 1, 1, ...), and decodes each channel with the mono EnCodec:
:class:`~tokenlm.codecs.stereo.StereoEncodecCodec`.

Classifier-free guidance needs nothing special: transformers' null condition is the text encoder output
zeroed by an all-zero attention mask, so its cross-attention keys and values are exactly zero (MusicGen's
attention has no bias), as are tokenlm's zero null embeddings; both give a zero cross-attention output.

Example:
    >>> backend = load_musicgen_hf("/models/musicgen-small")  # doctest: +SKIP
    >>> convert_musicgen_hf("/models/musicgen-small", "checkpoints/musicgen-small")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoTokenizer,
    EncodecModel,
    MusicgenConfig,
    MusicgenMelodyConfig,
    PreTrainedTokenizerBase,
    T5EncoderModel,
)
from transformers.utils import logging as hf_logging

from conditioners.base import Conditioner
from conditioners.chroma import ChromaConditioner
from conditioners.text.t5 import T5Conditioner
from tokenlm.codecs.base import Codec
from tokenlm.codecs.encodec import EncodecCodec
from tokenlm.codecs.stereo import StereoEncodecCodec
from tokenlm.common.hf import quiet_hf_loading
from tokenlm.convert.torch_files import TensorPool, load_strict
from tokenlm.lm.backend import LMBackend
from tokenlm.lm.model import LMConfig, LMModel
from tokenlm.lm.patterns import stereo_delays

#: the attribute MusicGen's text condition is read from
TEXT_ATTRIBUTE = "description"
#: the attribute MusicGen-Melody's melody is read from (``TextToAudio.generate(melody=...)``)
MELODY_ATTRIBUTE = "melody"
#: the model types this converter loads
MODEL_TYPES = ("musicgen", "musicgen_melody")
#: ``MusicgenMelodyFeatureExtractor`` settings (``preprocessor_config.json``) -> ChromaConditioner arguments
CHROMA_SETTINGS = {"sampling_rate": "sample_rate", "n_fft": "n_fft", "hop_length": "hop_length",
                   "chunk_length": "chunk_length"}
#: window length when the folder's generation config gives no ``max_length`` (MusicGen was trained on 30 s)
FALLBACK_MAX_DURATION = 30.0
#: MusicGen is trained with 10% condition dropout (classifier-free guidance)
MUSICGEN_CFG_DROPOUT = 0.1
#: transformers ``activation_function`` -> tokenlm ``LMConfig.activation``
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu"}
#: files of which at least one holds a tokenizer's vocabulary (transformers builds an empty tokenizer without)
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer.model")
#: weight files, in the order transformers prefers them
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: older transformers saved weight-normalised convolutions (EnCodec) under these names
LEGACY_SUFFIXES = {".weight_g": ".parametrizations.weight.original0", ".weight_v": ".parametrizations.weight.original1"}
#: tensors that may be stored but are recomputed: the decoder's sinusoidal position table
DERIVED_TENSORS = ("decoder.model.decoder.embed_positions.weights",)

_DECODER = "decoder.model.decoder."


class _WeightReader:
    """The tensors of a transformers checkpoint folder, read one at a time by (canonical) name.

    Handles ``model.safetensors`` and sharded safetensors (through the index file); torch pickles
    (``pytorch_model.bin``, sharded or not) only through ``torch.load(weights_only=True)``.
    """

    def __init__(self, folder: Path) -> None:
        self._open: dict[Path, Any] = {}  # file -> open safetensors handle or loaded state dict
        present = [name for name in WEIGHT_FILES if (folder / name).is_file()]
        if not present:
            raise ValueError(
                f"{str(folder)!r} has no MusicGen weights: expected one of {', '.join(WEIGHT_FILES)} "
                "(as written by MusicgenForConditionalGeneration.save_pretrained)"
            )
        chosen = folder / present[0]
        if chosen.name.endswith(".index.json"):
            try:
                weight_map = json.loads(chosen.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{str(chosen)!r} is not a valid weight index (no 'weight_map'): {err}") from err
            files = {name: folder / shard for name, shard in weight_map.items()}
        else:
            files = {name: chosen for name in self._names_in(chosen)}
        self._files: dict[str, tuple[Path, str]] = {}  # canonical name -> (file, stored name)
        for stored, path in files.items():
            canonical = stored
            for old, new in LEGACY_SUFFIXES.items():
                if canonical.endswith(old):
                    canonical = canonical[: -len(old)] + new
            self._files[canonical] = (path, stored)

    def _names_in(self, path: Path) -> list[str]:
        return list(self._handle(path).keys())

    def _handle(self, path: Path) -> Any:
        """An open safetensors file or a loaded state dict, kept for the next tensor of the same file."""
        if path not in self._open:
            if not path.is_file():
                raise ValueError(f"weight shard {str(path)!r} named by the index is missing")
            try:
                if path.suffix == ".safetensors":
                    self._open[path] = safe_open(str(path), framework="pt", device="cpu")
                else:
                    self._open[path] = torch.load(path, map_location="cpu", weights_only=True)
            except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError) as err:
                raise ValueError(f"cannot read the MusicGen weights {str(path)!r}: {err}") from err
        return self._open[path]

    def names(self) -> set[str]:
        """Canonical names of the tensors not taken yet."""
        return set(self._files)

    def has(self, name: str) -> bool:
        return name in self._files

    def take(self, name: str) -> torch.Tensor:
        """Read and remove the tensor ``name`` (ValueError naming it when the checkpoint lacks it)."""
        if name not in self._files:
            raise ValueError(f"the MusicGen checkpoint lacks the tensor {name!r}")
        path, stored = self._files.pop(name)
        handle = self._handle(path)
        return handle.get_tensor(stored) if path.suffix == ".safetensors" else handle[stored]

    def take_prefix(self, prefix: str) -> dict[str, torch.Tensor]:
        """All remaining tensors under ``prefix``, keyed without it."""
        return {name[len(prefix) :]: self.take(name) for name in sorted(self.names()) if name.startswith(prefix)}


def _read_config(folder: Path) -> MusicgenConfig | MusicgenMelodyConfig:
    """The (MusicGen or MusicGen-Melody) config of ``folder``; ValueError for anything this converter cannot load."""
    if not folder.is_dir():
        raise FileNotFoundError(f"MusicGen folder {str(folder)!r} does not exist")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{str(folder)!r} has no config.json: it is not a Hugging Face MusicGen folder")
    try:
        raw = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(config_file)!r} is not valid JSON: {err}") from err
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"{str(folder)!r} holds a {model_type!r} model, not a MusicGen one (config.json model_type must be one "
            f"of {MODEL_TYPES}, as written by MusicgenForConditionalGeneration or "
            "MusicgenMelodyForConditionalGeneration.save_pretrained)"
        )
    decoder = raw.get("decoder")
    channels = decoder.get("audio_channels", 1) if isinstance(decoder, dict) else 1
    codebooks = decoder.get("num_codebooks") if isinstance(decoder, dict) else None
    if channels not in (1, 2):
        raise ValueError(f"{str(folder)!r}: decoder audio_channels must be 1 (mono) or 2 (stereo), got {channels!r}")
    if channels == 2 and (not isinstance(codebooks, int) or codebooks % 2):
        raise ValueError(
            f"{str(folder)!r} holds a stereo MusicGen whose decoder predicts {codebooks} codebooks: stereo codebooks "
            "come in left/right pairs, so the count must be even"
        )
    config_class = MusicgenMelodyConfig if model_type == "musicgen_melody" else MusicgenConfig
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # MusicGen's start id == vocab_size makes transformers warn on every load
    try:
        config = config_class.from_pretrained(folder, local_files_only=True)
    except (TypeError, KeyError, ValueError) as err:
        raise ValueError(f"{str(config_file)!r} is not a valid {model_type} config: {err}") from err
    finally:
        hf_logging.set_verbosity(verbosity)
    text_type = config.text_encoder.model_type
    if text_type != "t5":
        raise ValueError(f"{str(folder)!r}: only T5 text encoders are supported, this MusicGen has {text_type!r}")
    audio_type = config.audio_encoder.model_type
    if audio_type != "encodec":
        raise ValueError(
            f"{str(folder)!r}: only EnCodec audio encoders are supported, this MusicGen has {audio_type!r}"
        )
    return config


def is_melody(config: MusicgenConfig | MusicgenMelodyConfig) -> bool:
    """True for a MusicGen-Melody config (chroma and text prepended, no cross-attention)."""
    return config.model_type == "musicgen_melody"


def _load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """The text tokenizer saved beside the model (ValueError when there is none)."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(
            f"{str(folder)!r} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): save the MusicGen "
            "processor or its T5 tokenizer beside the model (processor.save_pretrained(folder))"
        )
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ValueError(f"{str(folder)!r} has tokenizer files that cannot be loaded: {err}") from err


def _lm_config(decoder: Any, melody: bool = False) -> LMConfig:
    """LMConfig of a MusicGen decoder config (attention and FFN without bias, sinusoidal positions, LN eps 1e-5);
    ``melody``: MusicGen-Melody's, which reads its conditions as prepended tokens instead of cross-attending."""
    activation = ACTIVATIONS.get(decoder.activation_function)
    if activation is None:
        raise ValueError(
            f"MusicGen decoder activation {decoder.activation_function!r} is not supported; "
            f"supported: {sorted(ACTIVATIONS)}"
        )
    return LMConfig(
        num_codebooks=int(decoder.num_codebooks),
        cardinality=int(decoder.vocab_size),
        dim=int(decoder.hidden_size),
        num_layers=int(decoder.num_hidden_layers),
        num_heads=int(decoder.num_attention_heads),
        ffn_dim=int(decoder.ffn_dim),
        dropout=0.0,  # audiocraft trains MusicGen without dropout; inference ignores it anyway
        bias_attn=False,
        bias_ffn=False,
        activation=activation,
        positional="sin",
        max_period=10000.0,
        norm_eps=1e-5,  # nn.LayerNorm default, what transformers' MusicGen uses
        cross_attention=not melody,
        cross_attention_mask=True,
        init_std=float(decoder.initializer_factor),
        prefix_positions="shared" if melody else "before",
        prefix_padding="attended" if melody else "masked",
    )


def _lm_state_dict(weights: _WeightReader | TensorPool, cfg: LMConfig) -> dict[str, torch.Tensor]:
    """MusicGen decoder tensors renamed (and q/k/v fused) into :class:`LMModel`'s layout."""
    K = cfg.num_codebooks
    state = {
        "embeddings": torch.stack([weights.take(f"{_DECODER}embed_tokens.{k}.weight") for k in range(K)]),
        "heads": torch.stack([weights.take(f"decoder.lm_heads.{k}.weight") for k in range(K)]),  # [K, card, D]
        "out_norm.weight": weights.take(f"{_DECODER}layer_norm.weight"),
        "out_norm.bias": weights.take(f"{_DECODER}layer_norm.bias"),
    }  # embeddings: [K, card + 1, D]
    norms = {"norm_self": "self_attn_layer_norm", "norm_ffn": "final_layer_norm"}
    if cfg.cross_attention:
        norms["norm_cross"] = "encoder_attn_layer_norm"
    for i in range(cfg.num_layers):
        src, dst = f"{_DECODER}layers.{i}.", f"blocks.{i}."
        for ours, theirs in norms.items():
            for param in ("weight", "bias"):
                state[f"{dst}{ours}.{param}"] = weights.take(f"{src}{theirs}.{param}")
        self_attn = {p: weights.take(f"{src}self_attn.{p}_proj.weight") for p in ("q", "k", "v", "out")}
        state[f"{dst}self_attn.qkv.weight"] = torch.cat([self_attn["q"], self_attn["k"], self_attn["v"]])  # [3D, D]
        state[f"{dst}self_attn.out.weight"] = self_attn["out"]
        if cfg.cross_attention:
            cross = {p: weights.take(f"{src}encoder_attn.{p}_proj.weight") for p in ("q", "k", "v", "out")}
            state[f"{dst}cross_attn.q.weight"] = cross["q"]
            state[f"{dst}cross_attn.kv.weight"] = torch.cat([cross["k"], cross["v"]])  # [2D, D]
            state[f"{dst}cross_attn.out.weight"] = cross["out"]
        state[f"{dst}fc1.weight"] = weights.take(f"{src}fc1.weight")
        state[f"{dst}fc2.weight"] = weights.take(f"{src}fc2.weight")
    return state


def lm_from_musicgen_decoder(decoder: torch.nn.Module) -> LMModel:
    """An :class:`LMModel` with the weights of an in-memory transformers ``MusicgenForCausalLM`` (same maths).

    Used to compare tokenlm with transformers on identical weights (tests, benchmarks).
    """
    state = {f"decoder.{name}": tensor.detach() for name, tensor in decoder.state_dict().items()}
    cfg = _lm_config(decoder.config, melody=decoder.config.model_type == "musicgen_melody_decoder")
    lm = LMModel(cfg)
    load_strict(lm, _lm_state_dict(TensorPool(state, "MusicGen decoder"), cfg), "MusicGen decoder")
    return lm


def _chroma_conditioner(config: MusicgenMelodyConfig, weights: _WeightReader, folder: Path) -> ChromaConditioner:
    """MusicGen-Melody's chroma, with the feature extractor's settings and ``audio_enc_to_dec_proj``."""
    settings: dict[str, Any] = {}
    path = folder / "preprocessor_config.json"
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from err
        settings = {ours: saved[theirs] for theirs, ours in CHROMA_SETTINGS.items() if theirs in saved}
    conditioner = ChromaConditioner(MELODY_ATTRIBUTE, int(config.decoder.hidden_size),
                                    num_chroma=int(config.num_chroma), chroma_length=int(config.chroma_length),
                                    **settings)
    if not weights.has("audio_enc_to_dec_proj.weight"):
        raise ValueError("the MusicGen-Melody checkpoint has no audio_enc_to_dec_proj (the chroma projection)")
    proj = {"weight": weights.take("audio_enc_to_dec_proj.weight"), "bias": weights.take("audio_enc_to_dec_proj.bias")}
    load_strict(conditioner.proj, proj, "MusicGen-Melody audio_enc_to_dec_proj")
    return conditioner


def _text_conditioner(
    config: MusicgenConfig | MusicgenMelodyConfig, weights: _WeightReader, tokenizer: PreTrainedTokenizerBase
) -> T5Conditioner:
    """The T5 encoder, its tokenizer and ``enc_to_dec_proj`` as a T5 conditioner with output ``hidden_size``."""
    encoder = T5EncoderModel(config.text_encoder)
    state = weights.take_prefix("text_encoder.")
    if "shared.weight" in state:  # the encoder's embedding is tied to ``shared`` and often not stored
        state.setdefault("encoder.embed_tokens.weight", state["shared.weight"])
    load_strict(encoder, state, "MusicGen text encoder")
    d_model, dim = int(config.text_encoder.d_model), int(config.decoder.hidden_size)
    has_proj = weights.has("enc_to_dec_proj.weight")
    if not has_proj and d_model != dim:
        raise ValueError(
            f"the MusicGen text encoder width ({d_model}) differs from the decoder's ({dim}) and the checkpoint "
            "has no enc_to_dec_proj to bridge them"
        )
    conditioner = T5Conditioner(
        TEXT_ATTRIBUTE, dim, encoder=encoder, tokenizer=tokenizer, max_length=None, project=has_proj
    )  # no truncation, like the MusicGen processor and audiocraft
    if has_proj:
        proj = {"weight": weights.take("enc_to_dec_proj.weight"), "bias": weights.take("enc_to_dec_proj.bias")}
        load_strict(conditioner.output_proj, proj, "MusicGen enc_to_dec_proj")
    return conditioner


def _codec(config: MusicgenConfig | MusicgenMelodyConfig, weights: _WeightReader) -> Codec:
    """The EnCodec audio encoder at the bandwidth that gives the decoder's number of codebooks (per channel, for
    a stereo MusicGen, whose codec codes each channel with the mono EnCodec)."""
    model = EncodecModel(config.audio_encoder)
    load_strict(model, weights.take_prefix("audio_encoder."), "MusicGen audio encoder (EnCodec)")
    stereo = int(getattr(config.decoder, "audio_channels", 1)) == 2
    wanted = int(config.decoder.num_codebooks) // (2 if stereo else 1)
    bandwidths = [float(b) for b in config.audio_encoder.target_bandwidths]
    matching = [b for b in bandwidths if model.quantizer.get_num_quantizers_for_bandwidth(b) == wanted]
    if not matching:
        raise ValueError(
            f"no EnCodec bandwidth in {bandwidths} gives the {wanted} codebooks the MusicGen decoder predicts"
            f"{' per channel' if stereo else ''}"
        )
    codec = EncodecCodec(model, matching[0])
    return StereoEncodecCodec(codec) if stereo else codec


def _generation_config(folder: Path) -> dict[str, Any]:
    path = folder / "generation_config.json"
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from err
    return values if isinstance(values, dict) else {}


def _check_start_token(config: MusicgenConfig | MusicgenMelodyConfig, generation: dict[str, Any]) -> None:
    """tokenlm's start/padding token is ``cardinality``; MusicGen's must be the same id."""
    card = int(config.decoder.vocab_size)
    start = generation.get("decoder_start_token_id", generation.get("bos_token_id", config.decoder.bos_token_id))
    if start is not None and start != card:
        raise ValueError(
            f"the MusicGen decoder starts from token {start}, but tokenlm's start token is the codebook size "
            f"({card}); only checkpoints with decoder_start_token_id == vocab_size are supported"
        )


def load_musicgen_hf(src: str | Path, device: str | torch.device | None = None) -> LMBackend:
    """Build a tokenlm LM backend from a local Hugging Face MusicGen folder (never downloads): text-only or
    MusicGen-Melody, mono or stereo.

    Args:
        src: a folder written by ``MusicgenForConditionalGeneration.save_pretrained`` (or
            ``MusicgenMelodyForConditionalGeneration``) plus the tokenizer files (the processor's
            ``save_pretrained`` into the same folder).
        device: where to put the backend (default: CPU).
    Returns:
        an :class:`LMBackend` in eval mode: delay pattern, ``max_duration`` = generation ``max_length`` /
        frame rate (30 s when the folder gives none), ``cfg_dropout`` 0.1.
    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: the folder is not a supported MusicGen (another model, a stereo one with an odd codebook
            count, no tokenizer, weights that do not match the config).

    Example:
        >>> backend = load_musicgen_hf("/models/musicgen-small")  # doctest: +SKIP
        >>> codes = backend.generate_tokens([{"description": "lofi beat"}], 5.0, SamplingParams())  # doctest: +SKIP
    """
    folder = Path(src).expanduser()
    config = _read_config(folder)
    generation = _generation_config(folder)
    _check_start_token(config, generation)
    tokenizer = _load_tokenizer(folder)
    weights = _WeightReader(folder)

    melody = is_melody(config)
    lm_config = _lm_config(config.decoder, melody=melody)
    lm = LMModel(lm_config)
    load_strict(lm, _lm_state_dict(weights, lm_config), "MusicGen decoder")
    conditioners: list[Conditioner] = [_text_conditioner(config, weights, tokenizer)]
    routes = None
    if melody:  # transformers prepends the chroma, then the text
        conditioners.insert(0, _chroma_conditioner(config, weights, folder))
        routes = {MELODY_ATTRIBUTE: "prepend", TEXT_ATTRIBUTE: "prepend"}
    codec = _codec(config, weights)
    left = sorted(name for name in weights.names() if name not in DERIVED_TENSORS)
    if left:
        raise ValueError(
            f"the MusicGen checkpoint has tensors this converter does not know: {left[:8]}"
            f"{'...' if len(left) > 8 else ''}"
        )

    max_length = generation.get("max_length")
    valid = isinstance(max_length, int) and not isinstance(max_length, bool) and max_length > 0
    max_duration = max_length / codec.frame_rate if valid else FALLBACK_MAX_DURATION
    delays = stereo_delays(lm_config.num_codebooks) if codec.channels == 2 else None
    backend = LMBackend(
        lm, codec, conditioners, routes=routes, pattern="delay", delays=delays, max_duration=max_duration,
        cfg_dropout=MUSICGEN_CFG_DROPOUT,
    )
    backend.eval()
    if device is not None:
        backend.to(device)
    return backend


def convert_musicgen_hf(src: str | Path, dst: str | Path) -> Path:
    """Convert a Hugging Face MusicGen folder into a tokenlm checkpoint folder ``dst``; returns ``dst``.

    Example:
        >>> convert_musicgen_hf("/models/musicgen-small", "checkpoints/musicgen-small")  # doctest: +SKIP
        PosixPath('checkpoints/musicgen-small')
    """
    source, target = Path(src).expanduser(), Path(dst).expanduser()
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise ValueError(f"the destination {str(target)!r} is the MusicGen folder itself; choose another folder")
    backend = load_musicgen_hf(source)
    with quiet_hf_loading():  # no per-file progress bars from the codec's save_pretrained
        return backend.save_pretrained(target)


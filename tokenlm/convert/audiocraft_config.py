"""Read an audiocraft ``xp.cfg``: what tokenlm can reproduce, and the tokenlm configuration it maps to.

``xp.cfg`` is the hydra config audiocraft's solver dumped as YAML into an exported checkpoint. It is read with
OmegaConf (interpolations such as ``${sample_rate}`` resolve key by key). :func:`unsupported_options` lists every
option tokenlm cannot reproduce exactly, so a load fails with the whole list rather than with silently different
outputs; :func:`lm_config`, :func:`condition_routes`, :func:`conditioner_order`, :func:`chroma_settings`,
:func:`codebook_pattern`, :func:`stereo` and :func:`training_window` give the rest of the mapping.

Prepended conditions (``fuser.prepend``, MusicGen-Melody) follow audiocraft's ``ConditionFuser``: it walks the
conditions in the order ``ConditioningProvider`` produces them (text conditioners -- ``t5``, ``lut`` -- in
``conditioners`` order, then waveform ones -- ``chroma_stem``), and each prepended condition goes *in front of*
the sequence built so far. The last one walked is first: MusicGen-Melody's ``[chroma, description, audio]``,
whatever order ``fuser.prepend`` lists them in.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tokenlm.convert.torch_files import check_state_dict, load_torch_file
from tokenlm.lm.model import LMConfig

#: audiocraft activation names tokenlm implements (audiocraft passes these to torch's transformer layer)
ACTIVATIONS = ("gelu", "relu")
#: codebook patterns with a tokenlm equivalent: audiocraft ``modeling`` -> tokenlm pattern kind
PATTERNS = {"delay": "delay", "parallel": "parallel"}
#: training window when ``xp.cfg`` has no ``dataset.segment_duration``
FALLBACK_MAX_DURATION = 30.0
#: audiocraft conditioner models tokenlm reproduces, in the groups ``ConditioningProvider`` walks them: text, wav
TEXT_MODELS, WAV_MODELS = ("t5", "lut"), ("chroma_stem",)
#: fuser routes tokenlm reproduces (``input_interpolate`` is not one)
ROUTES = ("cross", "prepend", "sum")
#: audiocraft's melody condition name -> tokenlm attribute (``TextToAudio.generate(melody=...)``)
ATTRIBUTE_NAMES = {"self_wav": "melody"}
#: ``chroma_stem`` options tokenlm reads or that do not change inference (``cache_path``: a training cache)
CHROMA_OPTIONS = ("sample_rate", "n_chroma", "radix2_exp", "argmax", "match_len_on_eval", "eval_wavs", "n_eval_wavs",
                  "cache_path", "nfft", "winlen", "winhop", "norm")

_MISSING = object()


def select(cfg: DictConfig, key: str, default: Any = _MISSING) -> Any:
    """``cfg[key]`` for a dotted ``key`` (interpolations resolved); ``default`` when absent."""
    try:
        value = OmegaConf.select(cfg, key, default=None if default is _MISSING else default, throw_on_missing=False)
    except OmegaConfBaseException as err:
        raise ValueError(f"xp.cfg value {key!r} cannot be resolved: {err}") from err
    if value is None and default is _MISSING:
        raise ValueError(f"xp.cfg has no {key!r}: is this an audiocraft LM checkpoint?")
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def read_audiocraft_package(path: str | Path, what: str) -> tuple[DictConfig, dict[str, torch.Tensor]]:
    """``(xp.cfg, best_state)`` of an exported audiocraft checkpoint file (``torch.load(weights_only=True)``).

    Raises:
        ValueError: the file is unreadable, holds pickled code, or is not an exported audiocraft package.
    """
    package = load_torch_file(path, what)
    if not isinstance(package, dict) or "xp.cfg" not in package or "best_state" not in package:
        found = sorted(map(str, package)) if isinstance(package, dict) else type(package).__name__
        raise ValueError(
            f"{what} {str(path)!r} is not an exported audiocraft checkpoint: expected a dict with 'xp.cfg' and "
            f"'best_state' (as written by audiocraft.utils.export), found {found}"
        )
    text = package["xp.cfg"]
    try:
        cfg = OmegaConf.create(text) if isinstance(text, str) else None
    except (OmegaConfBaseException, ValueError) as err:
        raise ValueError(f"{what} {str(path)!r}: 'xp.cfg' is not valid YAML: {err}") from err
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{what} {str(path)!r}: 'xp.cfg' must be a YAML mapping, got {type(text).__name__}")
    return cfg, check_state_dict(package["best_state"], f"{what} {str(path)!r} 'best_state'")


def unsupported_options(cfg: DictConfig) -> list[str]:
    """Every option of ``xp.cfg`` that tokenlm cannot reproduce exactly (empty when the model is supported)."""
    problems: list[str] = []

    def require(key: str, allowed: tuple[Any, ...], default: Any, why: str) -> None:
        value = select(cfg, key, default)
        if value not in allowed:
            problems.append(f"{key}={value!r} ({why}; supported: {', '.join(map(repr, allowed))})")

    require("lm_model", ("transformer_lm",), None, "only the transformer LM of MusicGen / AudioGen")
    require("transformer_lm.norm_first", (True,), False, "tokenlm blocks are pre-norm")
    require("transformer_lm.norm", ("layer_norm",), "layer_norm", "normalisation layer")
    require("transformer_lm.activation", ACTIVATIONS, "gelu", "feed-forward activation")
    require("transformer_lm.causal", (True,), False, "the LM is causal")
    require("transformer_lm.past_context", (None,), None, "limited attention span")
    require("transformer_lm.layer_scale", (None,), None, "LayerScale")
    require("transformer_lm.qk_layer_norm", (False,), False, "query/key LayerNorm")
    require("transformer_lm.qk_layer_norm_cross", (False,), False, "query/key LayerNorm in cross-attention")
    require("transformer_lm.kv_repeat", (1,), 1, "grouped key/value heads")
    require("transformer_lm.positional_embedding", ("sin", "rope", "sin_rope"), "sin", "positional embedding")
    require("transformer_lm.xpos", (False,), False, "xPos decay")
    require("transformer_lm.positional_scale", (1, 1.0), 1.0, "scaled positional embedding")
    require("fuser.cross_attention_pos_emb", (False,), False, "positional embedding on the cross-attention input")
    attributes = select(cfg, "fuser.input_interpolate", []) or []
    if attributes:
        problems.append(
            f"fuser.input_interpolate={attributes} (conditions interpolated onto the input steps; supported routes: "
            f"{', '.join(ROUTES)})"
        )
    problems += _unsupported_stereo(cfg)
    modeling = select(cfg, "codebooks_pattern.modeling", None)
    if modeling not in PATTERNS:
        problems.append(f"codebooks_pattern.modeling={modeling!r} (supported: {', '.join(map(repr, PATTERNS))})")
    elif modeling == "delay":
        for key in ("flatten_first", "empty_initial"):
            value = select(cfg, f"codebooks_pattern.delay.{key}", 0)
            if value != 0:
                problems.append(f"codebooks_pattern.delay.{key}={value!r} (supported: 0)")
    problems += _unsupported_conditioners(cfg)
    return problems


def _unsupported_stereo(cfg: DictConfig) -> list[str]:
    """Problems of ``interleave_stereo_codebooks`` and ``compression_model_n_q`` (codebooks of the codec)."""
    problems = []
    n_q = select(cfg, "transformer_lm.n_q", None)
    if stereo(cfg):
        per_timestep = select(cfg, "interleave_stereo_codebooks.per_timestep", False)
        if per_timestep:
            problems.append(
                f"interleave_stereo_codebooks.per_timestep={per_timestep!r} (left and right interleaved along time; "
                "supported: False, interleaved along the codebooks as stereo MusicGen does)"
            )
        if isinstance(n_q, int) and n_q % 2:
            problems.append(f"transformer_lm.n_q={n_q} with interleave_stereo_codebooks.use=True (left/right "
                            "codebook pairs need an even count)")
    per_channel = select(cfg, "compression_model_n_q", None)
    if per_channel is not None and isinstance(n_q, int) and per_channel * (2 if stereo(cfg) else 1) != n_q:
        problems.append(
            f"compression_model_n_q={per_channel!r} (the codec's codebooks per channel must be transformer_lm.n_q="
            f"{n_q}{' / 2' if stereo(cfg) else ''}, what the LM predicts)"
        )
    return problems


def _conditioner_specs(cfg: DictConfig) -> dict[str, tuple[Any, dict[str, Any]]]:
    """audiocraft condition name -> ``(model, options)`` in ``xp.cfg`` order (``args`` left out)."""
    specs = {}
    for name, spec in (select(cfg, "conditioners", {}) or {}).items():
        if name == "args":
            continue
        model = spec.get("model") if isinstance(spec, dict) else None
        options = spec.get(model) if isinstance(spec, dict) and isinstance(model, str) else None
        specs[str(name)] = (model, dict(options or {}))
    return specs


def _unsupported_conditioners(cfg: DictConfig) -> list[str]:
    problems = []
    routes = _audiocraft_routes(cfg)
    specs = _conditioner_specs(cfg)
    for name, (model, options) in specs.items():
        if model == "t5":
            if options.get("normalize_text", False):
                problems.append(f"conditioners.{name}.t5.normalize_text=True (needs spaCy models; supported: False)")
            if routes.get(name) == "sum":
                problems.append(f"fuser.sum has the T5 condition {name!r} (a token sequence cannot be summed)")
        elif model == "lut":
            if options.get("tokenizer") != "noop":
                problems.append(
                    f"conditioners.{name}.lut.tokenizer={options.get('tokenizer')!r} (the whitespace tokenizer needs "
                    "spaCy models; supported: 'noop')"
                )
        elif model == "chroma_stem":
            problems += _unsupported_chroma(cfg, name, options, routes.get(name))
        else:
            problems.append(f"conditioners.{name}.model={model!r} (supported: {', '.join(TEXT_MODELS + WAV_MODELS)})")
        if name not in routes:
            problems.append(f"conditioner {name!r} is routed nowhere by the fuser (routes: {', '.join(ROUTES)})")
    attributes = [tokenlm_attribute(name) for name in specs]
    for attribute in sorted({a for a in attributes if attributes.count(a) > 1}):
        problems.append(f"two conditioners would both be tokenlm's attribute {attribute!r} (audiocraft's "
                        f"{', '.join(repr(k) for k, v in ATTRIBUTE_NAMES.items() if v == attribute)} is renamed so)")
    return problems + _summed_after_prepended(cfg)


def _unsupported_chroma(cfg: DictConfig, name: str, options: dict[str, Any], route: str | None) -> list[str]:
    """Problems of a ``chroma_stem`` conditioner (MusicGen-Melody's melody chroma)."""
    where = f"conditioners.{name}.chroma_stem"
    problems = [f"{where}.{key} (unknown option; known: {', '.join(CHROMA_OPTIONS)})"
                for key in options if key not in CHROMA_OPTIONS]
    for key in ("sample_rate", "radix2_exp"):
        if not isinstance(options.get(key), int) or isinstance(options.get(key), bool) or options[key] < 1:
            problems.append(f"{where}.{key}={options.get(key)!r} (a positive whole number is needed)")
    if options.get("eval_wavs") is not None:
        problems.append(f"{where}.eval_wavs={options['eval_wavs']!r} (evaluation clips replace the given melody; "
                        "supported: None)")
    norm = options.get("norm", math.inf)
    if norm != math.inf:
        problems.append(f"{where}.norm={norm!r} (chroma normalised by another norm than the maximum; supported: inf)")
    winlen, nfft = options.get("winlen"), options.get("nfft")
    if winlen is not None and nfft is not None and winlen != nfft:
        problems.append(f"{where}.winlen={winlen!r} with nfft={nfft!r} (a window shorter than the FFT; supported: "
                        "winlen == nfft)")
    if route != "prepend" and route is not None:
        problems.append(f"fuser.{route} has the chroma condition {name!r} (supported: prepend, as MusicGen-Melody)")
    duration = select(cfg, "dataset.segment_duration", None)
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) or not 0 < duration < math.inf:
        problems.append(f"dataset.segment_duration={duration!r} (the chroma condition's length comes from it; a "
                        "positive number of seconds is needed)")
    return problems


def _summed_after_prepended(cfg: DictConfig) -> list[str]:
    """audiocraft adds a summed condition to the whole input so far: prepended tokens too when it comes later."""
    routes = _audiocraft_routes(cfg)
    order = [name for name in _audiocraft_walk(cfg) if name in routes]
    problems = []
    for i, name in enumerate(order):
        before = [other for other in order[:i] if routes[other] == "prepend"]
        if routes[name] == "sum" and before:
            problems.append(
                f"fuser.sum has {name!r} after the prepended {before} in audiocraft's condition order, so audiocraft "
                "adds it to the prepended tokens too (tokenlm adds summed conditions to the audio steps only)"
            )
    return problems


def _audiocraft_routes(cfg: DictConfig) -> dict[str, str]:
    """audiocraft condition name -> route, for the routes tokenlm reproduces."""
    routes = {}
    for route in ROUTES:
        for attribute in select(cfg, f"fuser.{route}", []) or []:
            routes[str(attribute)] = route
    return routes


def _audiocraft_walk(cfg: DictConfig) -> list[str]:
    """Condition names in the order audiocraft's ``ConditioningProvider`` returns them: text, then waveform."""
    specs = _conditioner_specs(cfg)
    groups = (TEXT_MODELS, WAV_MODELS)
    return [name for models in groups for name, (model, _) in specs.items() if model in models]


def tokenlm_attribute(name: str) -> str:
    """The tokenlm attribute of audiocraft's condition ``name`` (``self_wav`` is ``melody``, others keep theirs)."""
    return ATTRIBUTE_NAMES.get(name, name)


def conditioner_order(cfg: DictConfig) -> list[str]:
    """audiocraft condition names in the order tokenlm's conditioners must have.

    tokenlm concatenates each route's conditions in conditioner order. audiocraft concatenates cross-attended ones
    in its walk order, but places each prepended one in front of the previous ones: the prepended conditions are
    reversed, the others keep their place.
    """
    walk = _audiocraft_walk(cfg)
    routes = _audiocraft_routes(cfg)
    prepended = iter(reversed([name for name in walk if routes.get(name) == "prepend"]))
    return [next(prepended) if routes.get(name) == "prepend" else name for name in walk]


def condition_routes(cfg: DictConfig) -> dict[str, str]:
    """tokenlm attribute -> tokenlm route (``cross`` / ``prepend`` / ``sum``) from ``fuser``."""
    return {tokenlm_attribute(name): route for name, route in _audiocraft_routes(cfg).items()}


def chroma_settings(cfg: DictConfig, name: str) -> dict[str, Any]:
    """:class:`~conditioners.chroma.ChromaConditioner` arguments (but the attribute and width) of the
    ``chroma_stem`` conditioner ``name``, as audiocraft's ``MusicGen.get_pretrained`` runs it.

    ``get_pretrained`` forces ``match_len_on_eval=True`` (and no length mask) on every melody model, whatever
    ``xp.cfg`` says: the chroma always has the length of the training window's (``dataset.segment_duration``),
    a shorter melody's frames repeated, a longer one's cut. tokenlm cuts the waveform just past the last window
    that frame needs, which gives the same frames. "No melody" is audiocraft's null waveform: silence.
    """
    options = _conditioner_specs(cfg)[name][1]
    sample_rate = int(options["sample_rate"])
    win_length = int(options.get("winlen") or 2 ** int(options["radix2_exp"]))
    n_fft = int(options.get("nfft") or win_length)
    hop = int(options.get("winhop") or win_length // 4)
    samples = max(int(sample_rate * float(select(cfg, "dataset.segment_duration"))), n_fft)  # shorter: padded
    chroma_length = 1 + samples // hop  # frames of a centred STFT
    needed = (chroma_length - 1) * hop + n_fft // 2  # the last frame's window ends here
    return {
        "sample_rate": sample_rate, "n_fft": n_fft, "hop_length": hop, "num_chroma": int(options.get("n_chroma", 12)),
        "chroma_length": chroma_length, "chunk_length": needed / sample_rate,
        "argmax": bool(options.get("argmax", False)), "null_chroma": "silence",
    }


def stereo(cfg: DictConfig) -> bool:
    """True when the LM predicts two channels' codebooks interleaved (``interleave_stereo_codebooks.use``)."""
    return bool(select(cfg, "interleave_stereo_codebooks.use", False))


def lm_config(cfg: DictConfig) -> LMConfig:
    """The tokenlm :class:`LMConfig` of an audiocraft ``xp.cfg`` (after :func:`unsupported_options` is empty)."""
    dim = int(select(cfg, "transformer_lm.dim"))
    return LMConfig(
        num_codebooks=int(select(cfg, "transformer_lm.n_q")),
        cardinality=int(select(cfg, "transformer_lm.card")),
        dim=dim,
        num_layers=int(select(cfg, "transformer_lm.num_layers")),
        num_heads=int(select(cfg, "transformer_lm.num_heads")),
        ffn_dim=int(float(select(cfg, "transformer_lm.hidden_scale", 4)) * dim),
        dropout=0.0,
        bias_attn=bool(select(cfg, "transformer_lm.bias_attn", True)),
        bias_ffn=bool(select(cfg, "transformer_lm.bias_ff", True)),
        bias_heads=bool(select(cfg, "transformer_lm.bias_proj", True)),
        activation=str(select(cfg, "transformer_lm.activation", "gelu")),
        positional=str(select(cfg, "transformer_lm.positional_embedding", "sin")),
        max_period=float(select(cfg, "transformer_lm.max_period", 10000.0)),
        rope_interleaved=True,
        norm_eps=1e-5,
        cross_attention="cross" in condition_routes(cfg).values(),
        cross_attention_mask=False,
        **_prefix_layout(cfg),
    )


def _prefix_layout(cfg: DictConfig) -> dict[str, str]:
    """audiocraft's prepended tokens: positions counted from the first of them, their padding zero vectors that
    are attended to (the fuser concatenates embeddings and ignores masks)."""
    if "prepend" not in condition_routes(cfg).values():
        return {}
    return {"prefix_positions": "shared", "prefix_padding": "attended"}


def codebook_pattern(cfg: DictConfig, num_codebooks: int) -> tuple[str, list[int] | None]:
    """tokenlm pattern kind and delays (None: the kind's default) of ``codebooks_pattern``."""
    modeling = select(cfg, "codebooks_pattern.modeling")
    if modeling == "delay":
        delays = [int(d) for d in select(cfg, "codebooks_pattern.delay.delays", list(range(num_codebooks)))]
        if len(delays) != num_codebooks:
            raise ValueError(f"codebooks_pattern.delay.delays {delays} must give one delay per codebook "
                             f"({num_codebooks})")
        return "delay", delays
    return PATTERNS[modeling], None


def training_window(cfg: DictConfig) -> float:
    """Seconds of audio the LM was trained on (``dataset.segment_duration``; 30 s when absent or invalid)."""
    duration = select(cfg, "dataset.segment_duration", None)
    valid = isinstance(duration, (int, float)) and not isinstance(duration, bool) and math.isfinite(duration)
    return float(duration) if valid and duration > 0 else FALLBACK_MAX_DURATION

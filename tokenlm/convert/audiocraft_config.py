"""Read an audiocraft ``xp.cfg``: what tokenlm can reproduce, and the tokenlm configuration it maps to.

``xp.cfg`` is the hydra config audiocraft's solver dumped as YAML into an exported checkpoint. It is read with
OmegaConf (interpolations such as ``${sample_rate}`` resolve key by key). :func:`unsupported_options` lists every
option tokenlm cannot reproduce exactly, so a load fails with the whole list rather than with silently different
outputs; :func:`lm_config`, :func:`condition_routes`, :func:`codebook_pattern` and :func:`training_window` give
the rest of the mapping.
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
    require("interleave_stereo_codebooks.use", (False,), False, "stereo MusicGen's interleaved left/right codebooks")
    require("fuser.cross_attention_pos_emb", (False,), False, "positional embedding on the cross-attention input")
    for route in ("prepend", "input_interpolate"):
        attributes = select(cfg, f"fuser.{route}", []) or []
        if attributes:
            problems.append(
                f"fuser.{route}={attributes} (conditions fused by {route!r}, e.g. MusicGen-Melody's chroma, are not "
                "supported yet; supported routes: cross, sum)"
            )
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


def _unsupported_conditioners(cfg: DictConfig) -> list[str]:
    problems = []
    conditioners = select(cfg, "conditioners", {}) or {}
    routes = condition_routes(cfg)
    for name, spec in conditioners.items():
        if name == "args":
            continue
        model = spec.get("model") if isinstance(spec, dict) else None
        options = spec.get(model, {}) if isinstance(spec, dict) else {}
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
        else:
            problems.append(f"conditioners.{name}.model={model!r} (supported: 't5', 'lut')")
        if name not in routes:
            problems.append(f"conditioner {name!r} is routed nowhere by the fuser (routes: cross, sum)")
    return problems


def condition_routes(cfg: DictConfig) -> dict[str, str]:
    """attribute -> tokenlm route (``cross`` / ``sum``) from ``fuser``."""
    routes = {}
    for route in ("cross", "sum"):
        for attribute in select(cfg, f"fuser.{route}", []) or []:
            routes[str(attribute)] = route
    return routes


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
    )


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

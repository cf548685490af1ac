"""audiocraft compression checkpoints (``compression_state_dict.bin`` contents) -> ``EncodecCodec``.

audiocraft is not imported. Two forms: an exported package whose ``xp.cfg`` YAML (``encodec``, ``seanet``, ``rvq``
sections) gives the architecture, checked option by option against what transformers' ``EncodecModel`` can express
(:func:`audiocraft_encodec_config`), and whose ``best_state`` is mapped strictly by
:func:`tokenlm.convert.encodec_seanet.seanet_to_transformers`; or ``{"pretrained": "facebook/encodec_32khz"}``, a
Hugging Face EnCodec taken from a local folder or the local Hugging Face cache (never downloaded). The bandwidth is
chosen to give the codebook count the LM uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import EncodecConfig

from tokenlm.codecs.encodec import EncodecCodec
from tokenlm.convert.encodec_seanet import codec_from_seanet_state
from tokenlm.convert.torch_files import check_state_dict

#: audiocraft's SEANetEncoder / SEANetDecoder defaults (audiocraft 1.3.0), for keys an xp.cfg leaves out
_SEANET_DEFAULTS: dict[str, Any] = {
    "channels": 1,
    "dimension": 128,
    "n_filters": 32,
    "n_residual_layers": 3,
    "ratios": [8, 5, 4, 2],
    "activation": "ELU",
    "activation_params": {"alpha": 1.0},
    "norm": "none",
    "norm_params": {},
    "kernel_size": 7,
    "last_kernel_size": 7,
    "residual_kernel_size": 3,
    "dilation_base": 2,
    "causal": False,
    "pad_mode": "reflect",
    "true_skip": True,
    "compress": 2,
    "lstm": 0,
    "disable_norm_outer_blocks": 0,
}
_DECODER_ONLY = {"trim_right_ratio": 1.0, "final_activation": None, "final_activation_params": None}
_ENCODEC_KEYS = {"autoencoder", "quantizer", "sample_rate", "channels", "causal", "renormalize", "renorm"}
#: rvq keys; all but n_q / bins only shape training (q_dropout: which codebook counts are meaningful)
_RVQ_DEFAULTS: dict[str, Any] = {
    "n_q": 8,
    "q_dropout": False,
    "bins": 1024,
    "decay": 0.99,
    "kmeans_init": True,
    "kmeans_iters": 10,
    "threshold_ema_dead_code": 2,
    "orthogonal_reg_weight": 0.0,
    "orthogonal_reg_active_codes_only": False,
    "orthogonal_reg_max_codes": None,
}
_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _bandwidth_for(num_codebooks: int, bits_per_codebook: float) -> float:
    """A bandwidth (kbps) for which transformers' ``EncodecModel`` uses exactly ``num_codebooks`` codebooks."""
    bandwidth = round(num_codebooks * bits_per_codebook / 1000, 6)

    def count(value: float) -> int:
        return min(math.floor(value * 1000 / bits_per_codebook), int(1000 * value // bits_per_codebook))

    while count(bandwidth) < num_codebooks:  # float rounding fell short
        bandwidth = math.nextafter(bandwidth, math.inf)
    return bandwidth


def _codebook_counts(config: EncodecConfig) -> dict[float, int]:
    """``{bandwidth: codebooks}`` for every ``config.target_bandwidths``."""
    bits_per_codebook = math.log2(config.codebook_size) * config.frame_rate
    return {float(b): max(1, math.floor(float(b) * 1000 / bits_per_codebook)) for b in config.target_bandwidths}


def _bandwidth_with(config: EncodecConfig, num_codebooks: int | None) -> float:
    """The target bandwidth giving ``num_codebooks`` codebooks (None: the one giving the most)."""
    counts = _codebook_counts(config)
    if num_codebooks is None:
        return max(counts, key=lambda b: (counts[b], -b))
    matching = [b for b, k in counts.items() if k == num_codebooks]
    if not matching:
        raise ValueError(
            f"no bandwidth of this EnCodec model gives {num_codebooks} codebooks; its bandwidths give {counts} "
            "(kbps: codebooks)"
        )
    return matching[0]


def _parse_xp_cfg(xp_cfg: str | Mapping[str, Any]) -> dict[str, Any]:
    """The xp.cfg YAML as a plain dict with its ``${...}`` interpolations resolved."""
    from omegaconf import OmegaConf

    if isinstance(xp_cfg, str):
        try:
            raw = yaml.safe_load(xp_cfg)
        except yaml.YAMLError as err:
            raise ValueError(f"audiocraft xp.cfg is not valid YAML: {err}") from err
    else:
        raw = dict(xp_cfg)
    if not isinstance(raw, dict):
        raise ValueError(f"audiocraft xp.cfg must be a YAML mapping, got a {type(raw).__name__}")
    try:
        return OmegaConf.to_container(OmegaConf.create(raw), resolve=True)  # type: ignore[return-value]
    except Exception as err:  # omegaconf raises its own error types for bad interpolations
        raise ValueError(f"audiocraft xp.cfg has an interpolation tokenlm cannot resolve: {err}") from err


def _section(cfg: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``cfg[key]`` as a dict (ValueError when absent or not a mapping)."""
    value = cfg.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"audiocraft xp.cfg has no {key!r} section (found: {sorted(map(str, cfg))})")
    return dict(value)


def _seanet_sides(cfg: Mapping[str, Any], problems: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Encoder and decoder SEANet arguments (defaults, ``seanet``, then its ``encoder`` / ``decoder`` overrides)."""
    seanet = _section(cfg, "seanet")
    encoder_override = seanet.pop("encoder", None) or {}
    decoder_override = seanet.pop("decoder", None) or {}
    encoder = {**_SEANET_DEFAULTS, **seanet, **encoder_override}
    decoder = {**_SEANET_DEFAULTS, **_DECODER_ONLY, **seanet, **decoder_override}
    for side, args, known in (
        ("encoder", encoder, set(_SEANET_DEFAULTS)),
        ("decoder", decoder, set(_SEANET_DEFAULTS) | set(_DECODER_ONLY)),
    ):
        unknown = sorted(set(args) - known)
        if unknown:
            problems.append(f"seanet {side} options audiocraft's SEANet{side.title()} does not take: {unknown}")
    return encoder, decoder


def _seanet_problems(encoder: dict[str, Any], decoder: dict[str, Any]) -> list[str]:
    """SEANet choices transformers' EncodecModel cannot express."""
    problems = []
    shared = sorted(k for k in _SEANET_DEFAULTS if encoder.get(k) != decoder.get(k))
    if shared:
        pairs = ", ".join(f"{k} (encoder {encoder.get(k)!r}, decoder {decoder.get(k)!r})" for k in shared)
        problems.append(f"encoder and decoder differ in {pairs}; transformers has one config for both")
    for side, args in (("encoder", encoder), ("decoder", decoder)):
        if args["activation"] != "ELU" or dict(args["activation_params"] or {}) not in ({}, {"alpha": 1.0}):
            problems.append(
                f"seanet.{side} activation {args['activation']!r} {args['activation_params']!r} (only ELU, alpha 1)"
            )
        if args["norm"] not in ("weight_norm", "time_group_norm"):
            problems.append(f"seanet.{side}.norm={args['norm']!r} (only 'weight_norm' or 'time_group_norm')")
        if args["norm_params"]:
            problems.append(f"seanet.{side}.norm_params={args['norm_params']!r} (only {{}})")
        if args["disable_norm_outer_blocks"] != 0:
            problems.append(f"seanet.{side}.disable_norm_outer_blocks={args['disable_norm_outer_blocks']} (only 0)")
        if not args["lstm"] or args["lstm"] < 1:
            problems.append(f"seanet.{side}.lstm={args['lstm']!r} (transformers always has >= 1 LSTM layer)")
        if args["pad_mode"] not in _PAD_MODES:
            problems.append(f"seanet.{side}.pad_mode={args['pad_mode']!r} (one of {list(_PAD_MODES)})")
    if decoder.get("final_activation") is not None:
        problems.append(f"seanet.decoder.final_activation={decoder['final_activation']!r} (only null)")
    if not decoder["causal"] and decoder.get("trim_right_ratio") != 1.0:
        problems.append(f"seanet.decoder.trim_right_ratio={decoder['trim_right_ratio']} on a non-causal model")
    return problems


def _rvq_args(cfg: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """The ``rvq`` section with audiocraft's defaults; unknown keys and non-power-of-2 codebooks are problems."""
    rvq = {**_RVQ_DEFAULTS, **_section(cfg, "rvq")}
    unknown = sorted(set(rvq) - set(_RVQ_DEFAULTS))
    if unknown:
        problems.append(f"rvq options audiocraft's ResidualVectorQuantizer does not take: {unknown}")
    bins = rvq["bins"]
    if not isinstance(bins, int) or bins < 2 or bins & (bins - 1):
        problems.append(f"rvq.bins={bins!r} (transformers needs a power of 2)")
    if not isinstance(rvq["n_q"], int) or rvq["n_q"] < 1:
        problems.append(f"rvq.n_q={rvq['n_q']!r} (a positive integer)")
    return rvq


def audiocraft_encodec_config(xp_cfg: str | Mapping[str, Any]) -> EncodecConfig:
    """The transformers ``EncodecConfig`` of an audiocraft EnCodec, from its ``xp.cfg`` (YAML string or dict).

    Reads ``compression_model``, ``encodec`` (``sample_rate``, ``channels``, ``renormalize``), ``seanet`` with its
    ``encoder`` / ``decoder`` overrides and ``rvq`` as audiocraft's ``get_compression_model`` does. Bandwidths are
    those giving 1 .. ``n_q`` codebooks when ``rvq.q_dropout`` (the model was trained to use any prefix), else
    only ``n_q``. ``renormalize`` becomes ``normalize`` (one loudness scale per clip, no chunking).

    Raises:
        ValueError: listing every option transformers' EncodecModel cannot express (another autoencoder or
            quantizer, a non-ELU activation, a final activation, norms other than weight / time group norm,
            ``disable_norm_outer_blocks > 0``, no LSTM, encoder / decoder differing, unknown keys, ...).
    """
    cfg = _parse_xp_cfg(xp_cfg)
    problems: list[str] = []
    if cfg.get("compression_model", "encodec") != "encodec":
        problems.append(f"compression_model={cfg['compression_model']!r} (only 'encodec')")
    encodec = _section(cfg, "encodec")
    unknown = sorted(set(encodec) - _ENCODEC_KEYS)
    if unknown:
        problems.append(f"encodec options audiocraft's EncodecModel does not take: {unknown}")
    if encodec.get("autoencoder") != "seanet":
        problems.append(f"encodec.autoencoder={encodec.get('autoencoder')!r} (only 'seanet')")
    if encodec.get("quantizer") != "rvq":
        problems.append(f"encodec.quantizer={encodec.get('quantizer')!r} (only 'rvq')")
    encoder, decoder = _seanet_sides(cfg, problems)
    problems += _seanet_problems(encoder, decoder)
    rvq = _rvq_args(cfg, problems)
    channels = encodec.get("channels")
    if channels not in (1, 2) or channels != encoder["channels"]:
        problems.append(f"encodec.channels={channels!r} with seanet.channels={encoder['channels']!r} (1 or 2, equal)")
    if problems:
        raise ValueError("audiocraft EnCodec options tokenlm cannot express: " + "; ".join(problems))
    return _seanet_config(encodec, encoder, decoder, rvq)


def _seanet_config(
    encodec: dict[str, Any], encoder: dict[str, Any], decoder: dict[str, Any], rvq: dict[str, Any]
) -> EncodecConfig:
    """Checked audiocraft arguments -> ``EncodecConfig``."""
    sample_rate, hop = int(encodec["sample_rate"]), math.prod(encoder["ratios"])
    bits_per_codebook = math.log2(rvq["bins"]) * math.ceil(sample_rate / hop)  # transformers' frame rate
    counts = range(1, rvq["n_q"] + 1) if rvq["q_dropout"] else [rvq["n_q"]]
    return EncodecConfig(
        target_bandwidths=[_bandwidth_for(k, bits_per_codebook) for k in counts],
        sampling_rate=sample_rate,
        audio_channels=int(encodec["channels"]),
        normalize=bool(encodec.get("renormalize", False)),
        chunk_length_s=None,
        overlap=None,
        hidden_size=encoder["dimension"],
        num_filters=encoder["n_filters"],
        num_residual_layers=encoder["n_residual_layers"],
        upsampling_ratios=list(encoder["ratios"]),
        norm_type=encoder["norm"],
        kernel_size=encoder["kernel_size"],
        last_kernel_size=encoder["last_kernel_size"],
        residual_kernel_size=encoder["residual_kernel_size"],
        dilation_growth_rate=encoder["dilation_base"],
        use_causal_conv=bool(encoder["causal"]),
        pad_mode=encoder["pad_mode"],
        compress=encoder["compress"],
        num_lstm_layers=encoder["lstm"],
        trim_right_ratio=float(decoder["trim_right_ratio"]),
        codebook_size=rvq["bins"],
        use_conv_shortcut=not encoder["true_skip"],
    )


def _cached_pretrained_folder(name: str, cache_dir: str | Path | None) -> Path:
    """The local Hugging Face cache snapshot of ``name`` (never downloads); FileNotFoundError saying how to get it."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True, cache_dir=cache_dir))
    except Exception as err:  # LocalEntryNotFoundError, HFValidationError (a malformed name), OSError
        where = f"cache {str(cache_dir)!r}" if cache_dir is not None else "Hugging Face cache"
        raise FileNotFoundError(
            f"audiocraft checkpoint refers to the pretrained EnCodec {name!r}, which is not in the local {where} "
            f"({type(err).__name__}); tokenlm never downloads: fetch it where there is internet "
            f"(`hf download {name}`) or pass pretrained_dir=<folder with its config.json and weights>"
        ) from err


def _from_pretrained_name(
    name: Any, pretrained_dir: str | Path | None, cache_dir: str | Path | None, num_codebooks: int | None
) -> EncodecCodec:
    """``{"pretrained": name}``: the Hugging Face EnCodec ``name`` from a local folder, at ``num_codebooks``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"audiocraft 'pretrained' entry must be a model name, got {name!r}")
    if name.startswith("dac_") or name == "debug_compression_model":
        raise ValueError(f"audiocraft pretrained compression model {name!r} is not an EnCodec; tokenlm loads EnCodec")
    if pretrained_dir is None and Path(name).expanduser().is_dir():
        pretrained_dir = name
    folder = (
        Path(pretrained_dir).expanduser() if pretrained_dir is not None else _cached_pretrained_folder(name, cache_dir)
    )
    weights = [folder / f for f in ("model.safetensors", "pytorch_model.bin") if (folder / f).is_file()]
    if (folder / "config.json").is_file() and not weights:
        raise FileNotFoundError(f"EnCodec folder {str(folder)!r} for {name!r} has a config.json but no weights")
    codec = EncodecCodec.from_pretrained(folder)
    return EncodecCodec(codec.model, _bandwidth_with(codec.model.config, num_codebooks))


def _best_state(package: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``best_state`` of an exported package (or ``best_state["model"]`` of a training checkpoint)."""
    state = package["best_state"]
    if isinstance(state, dict) and set(state) >= {"model"} and isinstance(state["model"], dict):
        state = state["model"]
    return check_state_dict(state, "audiocraft 'best_state'")


def encodec_from_audiocraft(
    package: Mapping[str, Any],
    *,
    pretrained_dir: str | Path | None = None,
    num_codebooks: int | None = None,
    cache_dir: str | Path | None = None,
) -> EncodecCodec:
    """An audiocraft compression checkpoint (``compression_state_dict.bin`` contents) as an EncodecCodec.

    Two forms:

    - ``{"pretrained": "facebook/encodec_32khz", ...}``: the weights come from a local Hugging Face folder,
      ``pretrained_dir`` if given, else the local Hugging Face cache (``cache_dir`` or the default one); never
      downloaded.
    - ``{"xp.cfg": <YAML>, "best_state": <state dict>, ...}``: the architecture from the config
      (:func:`audiocraft_encodec_config`), the weights mapped strictly (:func:`seanet_to_transformers`).

    Args:
        package: the loaded dict (e.g. ``load_torch_file(path, "audiocraft compression checkpoint")``).
        num_codebooks: codebooks to use (the LM's ``n_q``); None: the most the model offers, as audiocraft does.
    Raises:
        ValueError: another form, options transformers cannot express, weights not matching the config, no
            bandwidth with ``num_codebooks`` codebooks.
        FileNotFoundError: the pretrained model is not available locally.
    """
    if not isinstance(package, Mapping):
        raise ValueError(f"audiocraft compression checkpoint must be a dict, got a {type(package).__name__}")
    if "pretrained" in package:
        return _from_pretrained_name(package["pretrained"], pretrained_dir, cache_dir, num_codebooks)
    if "xp.cfg" not in package or "best_state" not in package:
        raise ValueError(
            "audiocraft compression checkpoint needs 'pretrained' or both 'xp.cfg' and 'best_state'; found keys "
            f"{sorted(map(str, package))}"
        )
    config = audiocraft_encodec_config(package["xp.cfg"])
    return codec_from_seanet_state(
        config, _best_state(package), _bandwidth_with(config, num_codebooks), "audiocraft EnCodec 'best_state'"
    )

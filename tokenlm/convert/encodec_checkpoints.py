"""EnCodec checkpoints of the ``encodec`` package and of audiocraft, loaded into :class:`EncodecCodec`.

Neither library is imported: the files are read with ``weights_only=True`` (``tokenlm.convert.torch_files``) and
their SEANet-style tensors (``encoder.model.0.conv.conv.weight_g``, ``quantizer.vq.layers.0._codebook.embed``, ...)
are renamed onto transformers' ``EncodecModel`` by :func:`seanet_to_transformers`, which uses every source tensor
and fills every target one or fails naming the tensors.

Where the architecture comes from:

- ``encodec`` package files (``encodec_24khz-d7cc33bc.th``, ``encodec_48khz-7e698e3e.th``, plain state dicts): the
  file name picks the variant's fixed choices (sample rate, causal padding, norm, normalisation, chunking,
  bandwidths, as in the package's ``encodec_model_24khz`` / ``encodec_model_48khz``); the sizes (channels, filters,
  ratios, kernels, residual layers, LSTM layers, latent width, codebooks) are read from the tensor shapes and checked
  against the variant. For the released files the shapes give the released architecture; smaller models saved
  under the same names load too (the parity tests rely on it).
- audiocraft ``compression_state_dict.bin`` contents: the ``xp.cfg`` YAML (``encodec``, ``seanet``, ``rvq``
  sections) or, for ``{"pretrained": "facebook/encodec_32khz"}``, a local Hugging Face folder.

Example::

    codec = load_encodec_package_checkpoint("encodec_24khz-d7cc33bc.th", bandwidth=6.0)
    convert_encodec_package_checkpoint("encodec_48khz-7e698e3e.th", "models/encodec_48khz")
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import EncodecConfig, EncodecModel

from tokenlm.codecs.encodec import EncodecCodec
from tokenlm.convert.torch_files import check_state_dict, load_state_dict_file, load_torch_file

# ------------------------------------------------------------------------------------------------ name mapping

#: (source pattern, target replacement), applied in order to every source name
_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(encoder|decoder)\.model\.(\d+)\."), r"\1.layers.\2."),
    (re.compile(r"\.(?:conv\.conv|convtr\.convtr)\.weight_g$"), ".conv.parametrizations.weight.original0"),
    (re.compile(r"\.(?:conv\.conv|convtr\.convtr)\.weight_v$"), ".conv.parametrizations.weight.original1"),
    (re.compile(r"\.(?:conv\.conv|convtr\.convtr)\.(weight|bias)$"), r".conv.\1"),
    (re.compile(r"\.(?:conv|convtr)\.norm\.(weight|bias)$"), r".norm.\1"),
    (re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\."), r"quantizer.layers.\1.codebook."),
)
#: codebook buffers only training uses; a source without them gets them derived from ``embed``
_DERIVED_BUFFERS = ("inited", "cluster_size", "embed_avg")


def _target_name(name: str) -> str:
    """The transformers name of a SEANet-style tensor name (unchanged when no rule applies)."""
    for pattern, replacement in _RENAMES:
        name = pattern.sub(replacement, name)
    return name


def _shown(names: list[str], limit: int = 12) -> str:
    """``a, b, c and N more``."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _expected_tensors(config: EncodecConfig) -> dict[str, torch.Size]:
    """Names and shapes of every parameter and persistent buffer of ``EncodecModel(config)``."""
    with torch.device("meta"):
        model = EncodecModel(config)
    return {name: tensor.shape for name, tensor in model.state_dict().items()}


def _derive_buffers(mapped: dict[str, torch.Tensor], missing: list[str]) -> list[str]:
    """Fill missing ``inited`` / ``cluster_size`` / ``embed_avg`` codebook buffers; returns what stays missing."""
    left = []
    for name in missing:
        prefix, _, buffer = name.rpartition(".")
        embed = mapped.get(f"{prefix}.embed")
        if buffer not in _DERIVED_BUFFERS or not prefix.startswith("quantizer.") or embed is None:
            left.append(name)
        elif buffer == "inited":
            mapped[name] = torch.ones(1)
        elif buffer == "cluster_size":
            mapped[name] = torch.zeros(embed.shape[0])
        else:
            mapped[name] = embed.clone()
    return left


def _check_codebooks_trained(state: Mapping[str, torch.Tensor], what: str) -> None:
    """Refuse codebooks whose ``inited`` flag is 0: k-means never ran, their entries are not trained."""
    untrained = sorted(
        name for name, tensor in state.items() if name.endswith("._codebook.inited") and not tensor.all()
    )
    if untrained:
        raise ValueError(f"{what}: codebooks never initialised (inited = 0, untrained model?): {_shown(untrained)}")


def seanet_to_transformers(
    state: Mapping[str, torch.Tensor], config: EncodecConfig, what: str = "EnCodec state dict"
) -> dict[str, torch.Tensor]:
    """Map a SEANet-style EnCodec state dict (``encodec`` package or audiocraft) onto transformers' names.

    Old-style weight norm (``weight_g`` / ``weight_v``) becomes the parametrisation's ``original0`` /
    ``original1`` (the same tensors, so the weights are exact); ``time_group_norm`` convolutions keep ``weight`` /
    ``bias`` beside their ``norm``; LSTM and codebook tensors are renamed. Codebook ``inited``, ``cluster_size``
    and ``embed_avg`` (training state) are derived when absent.

    Args:
        state: ``{name: tensor}`` as the original ``EncodecModel.state_dict()`` returns it.
        config: the transformers config the result must load into (strictly).
        what: how errors name the source.
    Returns:
        A state dict ``EncodecModel(config).load_state_dict(..., strict=True)`` accepts.
    Raises:
        ValueError: listing unknown source tensors, unfilled target tensors, or a tensor of the wrong shape.
    """
    state = check_state_dict(dict(state), what)
    _check_codebooks_trained(state, what)
    expected = _expected_tensors(config)
    mapped: dict[str, torch.Tensor] = {}
    source_of: dict[str, str] = {}
    unexpected = []
    for name, tensor in state.items():
        target = _target_name(name)
        if target not in expected:
            unexpected.append(name)
            continue
        if target in mapped:
            raise ValueError(f"{what}: tensors {source_of[target]!r} and {name!r} both map to {target!r}")
        mapped[target], source_of[target] = tensor, name
    missing = _derive_buffers(mapped, sorted(set(expected) - set(mapped)))
    if unexpected or missing:
        parts = []
        if missing:
            parts.append(f"missing (transformers names) {_shown(missing)}")
        if unexpected:
            parts.append(f"unexpected {_shown(sorted(unexpected))}")
        raise ValueError(f"{what} does not match the EnCodec architecture of its config: " + "; ".join(parts))
    for target, shape in expected.items():
        if mapped[target].shape != shape:
            source = source_of.get(target, target)
            raise ValueError(
                f"{what}: tensor {source!r} has shape {tuple(mapped[target].shape)}, but the config needs "
                f"{tuple(shape)} (for {target!r})"
            )
    return mapped


def _codec_from_state(
    config: EncodecConfig, state: Mapping[str, torch.Tensor], bandwidth: float | None, what: str
) -> EncodecCodec:
    """Build ``EncodecModel(config)``, load the mapped ``state`` strictly, and wrap it at ``bandwidth``."""
    mapped = seanet_to_transformers(state, config, what)
    model = EncodecModel(config)
    model.load_state_dict(mapped, strict=True)
    return EncodecCodec(model, bandwidth)


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


# --------------------------------------------------------------------------------------- the encodec package

#: what the file name fixes (``EncodecModel.encodec_model_24khz`` / ``encodec_model_48khz`` of encodec 0.1.1)
_PACKAGE_VARIANTS: dict[str, dict[str, Any]] = {
    "encodec_24khz": {
        "sampling_rate": 24_000,
        "audio_channels": 1,
        "use_causal_conv": True,
        "norm_type": "weight_norm",
        "normalize": False,
        "chunk_length_s": None,
        "overlap": None,
        "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0],
    },
    "encodec_48khz": {
        "sampling_rate": 48_000,
        "audio_channels": 2,
        "use_causal_conv": False,
        "norm_type": "time_group_norm",
        "normalize": True,
        "chunk_length_s": 1.0,
        "overlap": 0.01,
        "target_bandwidths": [3.0, 6.0, 12.0, 24.0],
    },
}
#: SEANet choices the package never changes
_PACKAGE_FIXED = {"pad_mode": "reflect", "dilation_growth_rate": 2, "trim_right_ratio": 1.0}


def _package_variant(path: Path) -> str:
    """``encodec_24khz`` or ``encodec_48khz`` from the file name; ValueError for any other name."""
    for variant in _PACKAGE_VARIANTS:
        if path.name.startswith(variant):
            return variant
    raise ValueError(
        f"cannot tell the EnCodec variant of {path.name!r}: the encodec package's checkpoints are named "
        f"'encodec_24khz-<hash>.th' or 'encodec_48khz-<hash>.th' (the name fixes sample rate, causality, norm and "
        "chunking); rename the file to say which it is"
    )


def _conv_weight(state: Mapping[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """The (unnormalised) weight of the SEANet convolution at ``prefix`` (``weight_v`` or ``weight``)."""
    for suffix in ("conv.conv.weight_v", "conv.conv.weight", "convtr.convtr.weight_v", "convtr.convtr.weight"):
        if f"{prefix}.{suffix}" in state:
            return state[f"{prefix}.{suffix}"]
    raise ValueError(f"the state dict has no convolution weight under {prefix!r}")


def _encoder_layers(state: Mapping[str, torch.Tensor]) -> list[tuple[int, str]]:
    """``(index, kind)`` of the encoder's weighted layers in order; kind is ``conv``, ``res`` or ``lstm``."""
    kinds: dict[int, str] = {}
    for name in state:
        match = re.match(r"encoder\.model\.(\d+)\.(block|shortcut|lstm|conv)\.", name)
        if match:
            kind = {"block": "res", "shortcut": "res", "lstm": "lstm", "conv": "conv"}[match.group(2)]
            kinds[int(match.group(1))] = kind
    return sorted(kinds.items())


def _norm_type(state: Mapping[str, torch.Tensor]) -> str:
    """``weight_norm`` (``weight_g`` tensors) or ``time_group_norm`` (``norm.weight`` tensors)."""
    weight_norm = any(name.endswith(".weight_g") for name in state)
    group_norm = any(re.search(r"\.(conv|convtr)\.norm\.weight$", name) for name in state)
    if weight_norm == group_norm:
        found = "both" if weight_norm else "neither"
        raise ValueError(
            f"the state dict has {found} weight-norm (weight_g) and group-norm (norm.weight) tensors; transformers' "
            "EncodecModel takes exactly one of 'weight_norm' or 'time_group_norm'"
        )
    return "weight_norm" if weight_norm else "time_group_norm"


def infer_seanet_architecture(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``EncodecConfig`` size arguments read from a SEANet-style state dict's tensor shapes.

    Returns ``audio_channels``, ``num_filters``, ``kernel_size``, ``upsampling_ratios`` (decoder order, from the
    downsampling kernels ``2 * ratio``), ``num_residual_layers``, ``residual_kernel_size``, ``compress``,
    ``use_conv_shortcut``, ``num_lstm_layers``, ``hidden_size``, ``last_kernel_size``, ``norm_type``,
    ``codebook_size`` and ``num_quantizers`` (codebooks in the file). What shapes cannot show (padding mode,
    causality, dilation growth) the caller supplies; the strict mapping then checks every tensor, the decoder's too.
    """
    layers = _encoder_layers(state)
    kinds = [kind for _, kind in layers]
    if len(kinds) < 4 or kinds[0] != "conv" or kinds[-1] != "conv" or kinds[-2] != "lstm":
        raise ValueError(
            f"the encoder layers {kinds} are not a SEANet encoder with an LSTM (conv, [res..., conv]..., lstm, conv)"
        )
    first = _conv_weight(state, f"encoder.model.{layers[0][0]}")  # [F, C, k]
    last = _conv_weight(state, f"encoder.model.{layers[-1][0]}")  # [D, F * 2^R, k]
    middle = layers[1:-2]
    downsampling = [index for index, kind in middle if kind == "conv"]
    residual = [index for index, kind in middle if kind == "res"]
    ratios = []
    for index in downsampling:
        kernel = _conv_weight(state, f"encoder.model.{index}").shape[-1]
        if kernel % 2:
            raise ValueError(f"encoder layer {index} has kernel {kernel}: SEANet downsampling kernels are 2 * ratio")
        ratios.append(kernel // 2)
    if not ratios or len(residual) % len(ratios):
        raise ValueError(f"encoder layers {kinds} do not repeat [residual blocks, downsampling conv] evenly")
    arch: dict[str, Any] = {
        "audio_channels": first.shape[1],
        "num_filters": first.shape[0],
        "kernel_size": first.shape[-1],
        "upsampling_ratios": list(reversed(ratios)),
        "num_residual_layers": len(residual) // len(ratios),
        "hidden_size": last.shape[0],
        "last_kernel_size": last.shape[-1],
        "norm_type": _norm_type(state),
        "num_lstm_layers": sum(
            1 for name in state if re.fullmatch(rf"encoder\.model\.{layers[-2][0]}\.lstm\.weight_ih_l\d+", name)
        ),
    }
    if residual:
        block = _conv_weight(state, f"encoder.model.{residual[0]}.block.1")  # [hidden, dim, k]
        arch["residual_kernel_size"] = block.shape[-1]
        arch["compress"] = max(1, block.shape[1] // block.shape[0])
        arch["use_conv_shortcut"] = any(name.startswith(f"encoder.model.{residual[0]}.shortcut.") for name in state)
    codebooks = sorted(name for name in state if re.fullmatch(r"quantizer\.vq\.layers\.\d+\._codebook\.embed", name))
    if not codebooks:
        raise ValueError("the state dict has no codebooks (quantizer.vq.layers.<i>._codebook.embed)")
    embed = state[codebooks[0]]  # [bins, D]
    arch["codebook_size"] = embed.shape[0]
    arch["num_quantizers"] = len(codebooks)
    return arch


def _package_config(state: Mapping[str, torch.Tensor], path: Path) -> EncodecConfig:
    """The transformers config of an ``encodec`` package checkpoint: variant from the name, sizes from shapes."""
    variant = _package_variant(path)
    fixed = _PACKAGE_VARIANTS[variant]
    arch = infer_seanet_architecture(state)
    disagree = [
        f"{key}: name says {fixed[key]!r}, tensors say {arch[key]!r}"
        for key in ("audio_channels", "norm_type")
        if fixed[key] != arch[key]
    ]
    if disagree:
        raise ValueError(f"{path.name!r} is named as {variant} but its tensors disagree: " + "; ".join(disagree))
    num_quantizers = arch.pop("num_quantizers")
    bits = math.log2(arch["codebook_size"])
    if 2 ** int(bits) != arch["codebook_size"]:
        raise ValueError(f"{path.name!r}: codebooks of {arch['codebook_size']} entries; EnCodec needs a power of 2")
    config = EncodecConfig(**{**arch, **fixed, **_PACKAGE_FIXED})
    if config.num_quantizers != num_quantizers:
        raise ValueError(
            f"{path.name!r} holds {num_quantizers} codebooks, but a {variant} model at {config.frame_rate} frames/s "
            f"with {arch['codebook_size']}-entry codebooks and bandwidths up to {fixed['target_bandwidths'][-1]} kbps "
            f"has {config.num_quantizers}"
        )
    return config


def load_encodec_package_checkpoint(path: str | Path, bandwidth: float | None = None) -> EncodecCodec:
    """An ``encodec`` package checkpoint (``encodec_24khz-*.th`` / ``encodec_48khz-*.th``) as an EncodecCodec.

    The file name gives the variant (24 kHz: mono, causal, weight norm, bandwidths 1.5-24 kbps; 48 kHz: stereo,
    non-causal, time group norm, 1 s chunks with 1 % overlap, loudness-normalised, 3-24 kbps) and the tensor shapes
    the sizes; both must agree. A 48 kHz codec is chunked: use ``encode_frames`` / ``decode_frames``.

    Args:
        path: the ``.th`` file (a state dict saved with ``torch.save``); read with ``weights_only=True``.
        bandwidth: kbps, one of the variant's bandwidths; None takes the first (lowest).
    Raises:
        ValueError: unknown file name, unreadable file, name and tensors disagreeing, a tensor missing / extra /
            of the wrong shape, or a bandwidth the variant does not have.
    """
    path = Path(path).expanduser()
    _package_variant(path)  # a bad name fails before the file is read
    state = load_state_dict_file(path, "encodec package checkpoint")
    return _codec_from_state(_package_config(state, path), state, bandwidth, f"encodec checkpoint {path.name!r}")


def _write_codec_folder(codec: EncodecCodec, dst: str | Path) -> Path:
    """Save ``codec`` to ``dst`` atomically: into a sibling temporary folder, renamed into place when complete."""
    dst = Path(dst).expanduser()
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FileExistsError(f"output {str(dst)!r} already exists and is not an empty folder")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        codec.save_pretrained(tmp)
        if dst.exists():
            dst.rmdir()
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def convert_encodec_package_checkpoint(src: str | Path, dst: str | Path, bandwidth: float | None = None) -> Path:
    """Convert an ``encodec`` package checkpoint into a Hugging Face folder ``EncodecCodec.from_pretrained`` loads.

    ``dst`` (``config.json`` + ``model.safetensors``) must not exist or be empty; it appears only when complete.
    All the variant's bandwidths are kept: ``bandwidth`` is checked here and chosen again when loading
    (``EncodecCodec.from_pretrained(dst, bandwidth=...)``).
    """
    return _write_codec_folder(load_encodec_package_checkpoint(src, bandwidth), dst)


# ------------------------------------------------------------------------------------------------- audiocraft

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
    return _codec_from_state(
        config, _best_state(package), _bandwidth_with(config, num_codebooks), "audiocraft EnCodec 'best_state'"
    )


def load_encodec_checkpoint(
    path: str | Path,
    *,
    bandwidth: float | None = None,
    num_codebooks: int | None = None,
    pretrained_dir: str | Path | None = None,
) -> EncodecCodec:
    """Any supported EnCodec file: an audiocraft package (a dict with ``xp.cfg`` / ``pretrained``) or an
    ``encodec`` package state dict (named ``encodec_24khz-*`` / ``encodec_48khz-*``).

    ``bandwidth`` applies to ``encodec`` package files, ``num_codebooks`` and ``pretrained_dir`` to audiocraft ones.
    """
    path = Path(path).expanduser()
    obj = load_torch_file(path, "EnCodec checkpoint")
    if isinstance(obj, dict) and ("xp.cfg" in obj or "pretrained" in obj):
        if bandwidth is not None:
            raise ValueError("bandwidth applies to encodec package files; for audiocraft ones give num_codebooks")
        return encodec_from_audiocraft(obj, pretrained_dir=pretrained_dir, num_codebooks=num_codebooks)
    if num_codebooks is not None or pretrained_dir is not None:
        raise ValueError("num_codebooks / pretrained_dir apply to audiocraft files; for encodec ones give bandwidth")
    state = check_state_dict(obj, f"encodec package checkpoint {str(path)!r}")
    return _codec_from_state(_package_config(state, path), state, bandwidth, f"encodec checkpoint {path.name!r}")


def convert_encodec_checkpoint(src: str | Path, dst: str | Path, **options: Any) -> Path:
    """:func:`load_encodec_checkpoint` ``(src, **options)`` written as a Hugging Face folder ``dst`` (atomically)."""
    return _write_codec_folder(load_encodec_checkpoint(src, **options), dst)

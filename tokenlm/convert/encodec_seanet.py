"""SEANet-style EnCodec state dicts mapped strictly onto transformers' ``EncodecModel``, and their sizes read.

Both the ``encodec`` package and audiocraft save their EnCodec as SEANet-style tensors
(``encoder.model.0.conv.conv.weight_g``, ``quantizer.vq.layers.0._codebook.embed``, ...). Neither library is
imported: the files are read with ``weights_only=True`` (``tokenlm.convert.torch_files``) and the tensors renamed onto
transformers' ``EncodecModel`` by :func:`seanet_to_transformers`, which uses every source tensor and fills every target
one or fails naming the tensors; :func:`codec_from_seanet_state` loads the result into an :class:`EncodecCodec`.
:func:`infer_seanet_architecture` reads the sizes (channels, filters, ratios, kernels, residual layers, LSTM layers,
latent width, codebooks) from the tensor shapes.

Where the config comes from is the callers' job: :mod:`tokenlm.convert.encodec_package` (the file name and the
shapes) and :mod:`tokenlm.convert.encodec_audiocraft` (the ``xp.cfg``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from transformers import EncodecConfig, EncodecModel

from tokenlm.codecs.encodec import EncodecCodec
from tokenlm.convert.torch_files import check_state_dict

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


def codec_from_seanet_state(
    config: EncodecConfig, state: Mapping[str, torch.Tensor], bandwidth: float | None, what: str
) -> EncodecCodec:
    """Build ``EncodecModel(config)``, load the mapped ``state`` strictly, and wrap it at ``bandwidth``."""
    mapped = seanet_to_transformers(state, config, what)
    model = EncodecModel(config)
    model.load_state_dict(mapped, strict=True)
    return EncodecCodec(model, bandwidth)


# ------------------------------------------------------------------------------------- architecture from shapes


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

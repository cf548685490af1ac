"""Build the model of a recipe: codec, conditioners and LM, from a plain config mapping."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from conditioners.fuser import check_fuse
from conditioners.registry import get_conditioner_class
from tokenlm.codecs import EncodecCodec, load_codec, tiny_encodec_config
from tokenlm.lm.backend import LMBackend
from tokenlm.lm.model import LMConfig, LMModel
from tokenlm.lm.patterns import stereo_delays

log = logging.getLogger(__name__)


def build_codec(cfg: dict[str, Any]) -> EncodecCodec:
    """``codec.path`` (a local Hugging Face EnCodec folder) or a random codec from ``codec.tiny`` overrides."""
    if cfg.get("path"):
        return load_codec(Path(cfg["path"]), {"kind": cfg.get("kind", "encodec"), "bandwidth": cfg.get("bandwidth")})
    tiny = tiny_encodec_config(**(cfg.get("tiny") or {}))
    return EncodecCodec.from_config(tiny, bandwidth=cfg.get("bandwidth"), seed=int(cfg.get("seed", 0)))


#: keys a recipe's conditioner entry may hold
ENTRY_KEYS = ("kind", "attribute", "params", "fuse", "dropout", "vocab_size")

ValuesOf = Callable[[str], list[str]]


def build_conditioner(
    entry: dict[str, Any], dim: int, captions: list[str], work_dir: Path, values_of: ValuesOf | None = None
):
    """One conditioner of the recipe entry ``{kind, attribute, params, fuse, dropout}``.

    A SentencePiece one without ``spm_path`` is trained on ``captions``; a ``lut`` one without ``values``
    takes the attribute's values in the training data (``values_of(attribute)``).
    """
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown or "kind" not in entry or "attribute" not in entry:
        raise ValueError(
            f"conditioner entry {entry!r}: needs kind and attribute; unknown key(s) {unknown}; "
            f"allowed keys: {', '.join(ENTRY_KEYS)}"
        )
    kind = entry["kind"]
    params = dict(entry.get("params") or {})
    if kind == "sentencepiece" and not params.get("spm_path"):
        from conditioners.text.sentencepiece import train_sentencepiece

        vocab = int(entry.get("vocab_size", 256))
        if not captions:
            raise ValueError("a sentencepiece conditioner without spm_path needs captions in the training data")
        params["spm_path"] = str(train_sentencepiece(captions, work_dir / f"spm_{entry['attribute']}", vocab))
        log.info("trained a SentencePiece model (vocab %d) on %d captions", vocab, len(captions))
    if kind == "lut" and not params.get("values"):
        params["values"] = sorted(set(values_of(entry["attribute"]))) if values_of is not None else []
        if not params["values"]:
            raise ValueError(
                f"the lut conditioner for {entry['attribute']!r} needs params.values (its categories), and the "
                "training data has no values of that attribute to take them from"
            )
        log.info("lut %r: %d categories from the training data", entry["attribute"], len(params["values"]))
    cls = get_conditioner_class(kind)
    return cls(attribute=entry["attribute"], output_dim=dim, **params)


def routes_of(entries: list[dict[str, Any]]) -> dict[str, str]:
    """attribute -> fuse route (``cross`` unless the entry says ``fuse: prepend`` or ``fuse: sum``)."""
    return {entry["attribute"]: check_fuse(entry["attribute"], entry.get("fuse") or "cross") for entry in entries}


def build_backend(
    cfg: dict[str, Any], captions: list[str], work_dir: Path, seed: int, values_of: ValuesOf | None = None
) -> torch.nn.Module:
    """The untrained backend a recipe describes: ``backend: lm`` (default) or ``backend: ldm``."""
    kind = cfg.get("backend", "lm")
    if kind == "codec":
        return build_codec_trainee(cfg, seed)
    if kind == "clap":
        return build_clap_trainee(cfg, captions, work_dir, seed)
    if kind == "ldm":
        return build_ldm_backend(cfg, captions, work_dir, seed, values_of)
    if kind != "lm":
        raise ValueError(f"recipe backend must be 'lm', 'ldm', 'codec' or 'clap', got {kind!r}")
    return build_lm_backend(cfg, captions, work_dir, seed, values_of)


def build_codec_trainee(cfg: dict[str, Any], seed: int) -> torch.nn.Module:
    """The untrained codec of a codec recipe: ``codec.architecture`` (``codec_config`` keywords) and
    ``codec.training`` (``CodecTrainingConfig`` fields)."""
    from tokenlm.codecs.training import CodecTrainee, CodecTrainingConfig, codec_config

    torch.manual_seed(seed)
    section = cfg["codec"]
    architecture = codec_config(**(section.get("architecture") or {}))
    return CodecTrainee(CodecTrainingConfig(encodec=architecture, **(section.get("training") or {})))


def build_clap_trainee(cfg: dict[str, Any], captions: list[str], work_dir: Path, seed: int) -> torch.nn.Module:
    """The untrained CLAP of a ``backend: clap`` recipe: ``clap`` holds ``ClapTrainingConfig`` fields; its
    tokenizer is trained on the training captions."""
    from tokenlm.clap import ClapTrainee, ClapTrainingConfig

    torch.manual_seed(seed)
    return ClapTrainee.build(ClapTrainingConfig(**(cfg.get("clap") or {})), captions, work_dir)


def build_lm_backend(
    cfg: dict[str, Any], captions: list[str], work_dir: Path, seed: int, values_of: ValuesOf | None = None
) -> LMBackend:
    """The untrained LM backend a recipe describes (``model``, ``codec``, ``conditioners``, ``pattern``).

    The LM gets cross-attention when some conditioner is routed to ``cross``, unless ``model.cross_attention``
    says otherwise.
    """
    torch.manual_seed(seed)
    codec = build_codec(cfg["codec"])
    entries = list(cfg["conditioners"] or [])
    routes = routes_of(entries)
    model_cfg = dict(cfg["model"])
    model_cfg.setdefault("cross_attention", "cross" in routes.values())
    lm = LMModel(LMConfig(num_codebooks=codec.num_codebooks, cardinality=codec.cardinality, **model_cfg))
    conditioners = [build_conditioner(e, lm.config.dim, captions, work_dir, values_of) for e in entries]
    solver = cfg["solver"]
    pattern = cfg.get("pattern", "delay")
    delays = stereo_delays(codec.num_codebooks) if codec.channels == 2 and pattern == "delay" else None
    return LMBackend(
        lm, codec, conditioners, routes=routes, pattern=pattern, delays=delays,
        max_duration=float(cfg["data"]["segment_duration"]), cfg_dropout=float(solver["cfg_dropout"]),
        sampling=dict(cfg.get("generation") or {}),
    )


def build_ldm_backend(
    cfg: dict[str, Any], captions: list[str], work_dir: Path, seed: int, values_of: ValuesOf | None = None
):
    """The untrained diffusion backend of a recipe, its latent statistics fitted on the training audio
    (the first ``model.stats_items`` segments; the quantised latent when it trains on a token cache)."""
    from tokenlm.data.dataset import AudioSegmentDataset, collate_audio
    from tokenlm.ldm.backend import LDMBackend
    from tokenlm.ldm.dit import DiT, DiTConfig

    torch.manual_seed(seed)
    codec = build_codec(cfg["codec"])
    entries = list(cfg["conditioners"] or [])
    not_cross = {name: route for name, route in routes_of(entries).items() if route != "cross"}
    if not_cross:
        raise ValueError(f"the diffusion backend reads every condition through cross-attention; remove the fuse "
                         f"route(s) {not_cross} from the recipe's conditioners")
    model_cfg = dict(cfg["model"])
    stats_items = int(model_cfg.pop("stats_items", 64))
    mask_prob = float(model_cfg.pop("mask_prob", 0.0))
    dit = DiT(DiTConfig(latent_dim=codec.latent_dim, **model_cfg))
    conditioners = [build_conditioner(e, dit.config.cond_dim, captions, work_dir, values_of) for e in entries]
    data = cfg["data"]
    backend = LDMBackend(
        dit, codec, conditioners, max_duration=float(data["segment_duration"]),
        cfg_dropout=float(cfg["solver"]["cfg_dropout"]), mask_prob=mask_prob,
        sampling=dict(cfg.get("generation") or {}),
    )
    train = data["train"] if isinstance(data["train"], list) else [data["train"]]
    dataset = AudioSegmentDataset(
        train, segment_duration=float(data["segment_duration"]), sample_rate=codec.sample_rate,
        channels=codec.channels, seed=seed,
    )
    batch = collate_audio([dataset[i] for i in range(min(stats_items, len(dataset)))])
    backend.fit_latent_stats(batch["wav"], batch["mask"], quantized=bool(data.get("cache")))
    log.info("latent statistics fitted on %d segments", batch["wav"].shape[0])
    return backend


def attach_caches(backend: torch.nn.Module, entries: list[dict[str, Any]]) -> None:
    """Give frozen encoders the recipe's ``params.cache_dir`` (a runtime option checkpoints do not keep)."""
    for entry in entries:
        cache_dir = (entry.get("params") or {}).get("cache_dir")
        if not cache_dir:
            continue
        conditioner = backend.conditioning.conditioners[entry["attribute"]]
        if not hasattr(conditioner, "set_cache_dir"):
            raise ValueError(
                f"conditioner {entry['attribute']!r} (kind {entry['kind']!r}) has no embedding cache; "
                "params.cache_dir works with frozen text encoders (minilm, clap)"
            )
        conditioner.set_cache_dir(cache_dir)

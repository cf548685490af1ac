"""``tokenlm train recipe=NAME key=value ...`` and ``torchrun ... -m tokenlm.train recipe=NAME ...``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("tokenlm.train")


def recipes_dir() -> Path:
    """The hydra config tree: ``$TOKENLM_RECIPES``, else ``recipes/`` of the source checkout."""
    env = os.environ.get("TOKENLM_RECIPES")
    folder = Path(env) if env else Path(__file__).resolve().parents[2] / "recipes"
    if not (folder / "config.yaml").is_file():
        raise FileNotFoundError(f"no recipes found at {str(folder)!r}; set TOKENLM_RECIPES to the recipes/ folder")
    return folder


def available_recipes() -> list[str]:
    return sorted(p.stem for p in (recipes_dir() / "recipe").glob("*.yaml"))


def compose_recipe(overrides: list[str]) -> dict[str, Any]:
    """Compose ``recipes/config.yaml`` with ``overrides`` into a plain, fully resolved dict."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from tokenlm.common.assets import register_asset_resolver

    register_asset_resolver()
    try:
        with initialize_config_dir(config_dir=str(recipes_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except (HydraException, OmegaConfBaseException, FileNotFoundError) as error:
        raise ValueError(f"{error}\n(recipe presets: {', '.join(available_recipes())})") from error


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def prepare_data(cfg: dict[str, Any], is_main: bool) -> None:
    """Generate the recipe's synthetic data set when it asks for one and it is not there yet."""
    synth = cfg["data"].get("synth")
    train = cfg["data"]["train"]
    if not synth or not is_main or Path(train if isinstance(train, str) else train[0]).is_file():
        return
    from tokenlm.data.synth import generate_dataset

    log.info("generating the synthetic data set (%d clips) into %s", synth["n"], synth["out"])
    workers = int(synth.get("workers") or os.cpu_count() or 1)
    duration = synth.get("duration")  # seconds, [low, high], or None for the preset's range
    generate_dataset(
        synth["out"], int(synth["n"]), seed=int(synth["seed"]), preset=synth["preset"], workers=workers,
        duration=duration,
    )


def prepare_token_cache(cfg: dict[str, Any], backend: torch.nn.Module) -> None:
    """Encode the training manifest(s) into ``data.cache`` with the model's codec when the recipe names a cache
    that is not there yet (a complete cache has its ``index.json``; ``TrainData`` then checks it was made by this
    very codec)."""
    cache = cfg["data"].get("cache")
    if not cache or (Path(cache) / "index.json").is_file():
        return
    train = cfg["data"]["train"]
    if not isinstance(train, str):
        raise ValueError(f"data.cache is built from one training manifest; data.train lists {len(train)}: {train}")
    from tokenlm.data.token_cache import encode_manifest

    log.info("encoding %s into the token cache %s", train, cache)
    encode_manifest(train, backend.codec, cache, batch_size=16)


def copy_initial_model(source: Path, init_dir: Path) -> None:
    """Start a run from a saved checkpoint folder (``init_from``: fine-tuning, e.g. a converted MusicGen): it is
    copied, whole, as the run's initial model; the recipe's model, codec and conditioner settings are not used."""
    import shutil

    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"init_from {str(source)!r} is not a tokenlm checkpoint folder (no config.json): "
                                "convert a model first (tokenlm convert ...)")
    staging = init_dir.with_name(init_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    staging.rename(init_dir)


def load_training_backend(kind: str, directory: Path, device: torch.device) -> torch.nn.Module:
    """The saved initial model of a run: a generation backend, or a codec being trained (``backend: codec``)."""
    if kind == "codec":
        from tokenlm.codecs.training import CodecTrainee

        return CodecTrainee.from_pretrained(directory, device=device)
    if kind == "clap":
        from tokenlm.clap import ClapTrainee

        return ClapTrainee.from_pretrained(directory, device=device)
    from tokenlm.backends import get_backend_class

    return get_backend_class(kind).from_pretrained(directory, device=device)


def run(overrides: list[str]) -> Path:
    """Train the recipe; returns the exported inference checkpoint folder."""
    from tokenlm.train import distributed as D
    from tokenlm.train.build import attach_caches, build_backend
    from tokenlm.train.data import TrainData, captions_of, category_values
    from tokenlm.train.trainer import Trainer, frozen_codec

    cfg = compose_recipe(overrides)
    device = _device(cfg["device"])
    info = D.init_distributed(device)
    if device.type == "cuda" and cfg["device"] == "auto":
        device = torch.device("cuda", info.local_rank)
    run_dir = Path(cfg["run_dir"])
    try:
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            prepare_data(cfg, True)
            init_dir = run_dir / "init"
            if cfg.get("init_from") and not (init_dir / "config.json").is_file():
                copy_initial_model(Path(cfg["init_from"]), init_dir)
            if not (init_dir / "config.json").is_file():
                train = cfg["data"]["train"]
                manifests = train if isinstance(train, list) else [train]
                captions = captions_of(manifests) if cfg.get("backend") != "codec" else []
                backend = build_backend(
                    cfg, captions, run_dir / "assets", int(cfg["seed"]), lambda name: category_values(manifests, name)
                )
                backend.save_pretrained(init_dir)
        if info.enabled:
            torch.distributed.barrier()
        # every rank loads the same saved initial model, so all start from identical weights
        backend = load_training_backend(str(cfg.get("backend", "lm")), run_dir / "init", device)
        attach_caches(backend, cfg.get("conditioners") or [])
        if info.is_main and cfg.get("backend", "lm") in ("lm", "ldm"):
            prepare_token_cache(cfg, backend)
        if info.enabled:
            torch.distributed.barrier()
        frozen = frozen_codec(backend)
        if frozen is not None:
            frozen.requires_grad_(False)
        data = TrainData(cfg, backend, info, seed=int(cfg["seed"]))
        trainer = Trainer(cfg, backend, data, info)
        trainer.resume_if_asked()
        trainer.fit()
        if trainer.step >= trainer.total_steps:
            return trainer.export()
        return run_dir
    finally:
        D.cleanup_distributed()


def main(argv: list[str] | None = None) -> int:
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print("usage: tokenlm train recipe=NAME [key=value ...]\nrecipes: " + ", ".join(available_recipes()))
        return 0
    out = run(args)
    print(f"model written to {out}")
    return 0

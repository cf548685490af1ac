"""``tokenlm assets list | pack``: the models shipped inside the package, and how a trained run becomes one."""

from __future__ import annotations

import argparse


def _list(args: argparse.Namespace) -> int:
    from tokenlm.common.assets import ASSETS_DIR, shipped_assets
    from tokenlm.defaults import DEFAULT_MODELS

    for name in shipped_assets():
        size = sum(f.stat().st_size for f in (ASSETS_DIR / name).rglob("*") if f.is_file())
        aliases = [d.name for d in DEFAULT_MODELS.values() if d.asset == name]
        print(f"{name:16s} {size / 1e6:6.1f} MB  {', '.join(aliases)}")
    return 0


def _pack(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from tokenlm.train.pack import pack_clap, pack_model

    config_path = Path(args.export) / "config.json"
    if config_path.is_file() and json.loads(config_path.read_text()).get("model_type") == "clap":  # a CLAP folder
        target = pack_clap(args.export, args.name, assets_dir=args.assets_dir, half=not args.fp32)
    else:
        target = pack_model(args.export, args.name, codec_asset=args.codec, assets_dir=args.assets_dir,
                            half=not args.fp32)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"packed {args.export} into {target} ({size / 1e6:.1f} MB)")
    return 0


def add_assets_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``tokenlm assets``."""
    assets = commands.add_parser("assets", help="the models shipped in the package (list, pack a trained run)")
    sub = assets.add_subparsers(dest="assets_command", required=True)
    listing = sub.add_parser("list", help="the shipped models, their sizes and default names")
    listing.set_defaults(func=_list)
    pack = sub.add_parser(
        "pack", help="turn an exported run into a shipped asset (shared codec and packaged MiniLM referenced, fp16; "
                     "a trained CLAP folder is stored in fp16)",
        epilog="example: tokenlm assets pack runs/demo_lm/export --name lm_sfx16k",
    )
    pack.add_argument("export", help="the exported checkpoint folder of a run (runs/NAME/export)")
    pack.add_argument("--name", required=True, help="asset folder name (lm_sfx16k, ldm_sfx16k)")
    pack.add_argument("--codec", default="codec_sfx16k", help="the shipped codec the model was trained on")
    pack.add_argument("--assets-dir", default=None, help="where to write (default: the package's tokenlm/assets/)")
    pack.add_argument("--fp32", action="store_true", help="keep float32 weights (default: store float16)")
    pack.set_defaults(func=_pack)

"""The ``tokenlm data`` command group: ``index`` (build a manifest) and ``encode`` (build a token cache).

Examples::

    tokenlm data index sounds/ --out sounds/data.jsonl
    tokenlm data encode sounds/data.jsonl --model-or-codec ckpt/ --out cache/sounds --segment-duration 10
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _index(args: argparse.Namespace) -> int:
    from tokenlm.data.manifest import index_directory

    out = Path(args.out) if args.out else Path(args.directory) / "data.jsonl"
    index_directory(args.directory, out, progress=not args.quiet, relative=not args.absolute)
    print(f"wrote manifest {out}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    import torch

    from tokenlm.data.token_cache import encode_manifest, resolve_codec

    codec = resolve_codec(args.model_or_codec, bandwidth=args.bandwidth)
    if args.device:
        codec = codec.to(torch.device(args.device))
    out = encode_manifest(
        args.manifest, codec, args.out, segment_duration=args.segment_duration, batch_size=args.batch_size,
        shard_size=args.shard_size, progress=not args.quiet,
    )
    print(f"wrote token cache {out}")
    return 0


def _data_commands(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-command action of the ``data`` group, creating the group if it does not exist yet."""
    existing = subparsers.choices.get("data")
    if existing is None:
        group = subparsers.add_parser("data", help="datasets: manifests and token caches")
        return group.add_subparsers(dest="data_command", required=True)
    for action in existing._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return existing.add_subparsers(dest="data_command", required=True)


def add_data_parser(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add ``data index`` and ``data encode`` to the ``data`` group (created if missing); returns its
    sub-command action so that other ``data`` commands can join it."""
    commands = _data_commands(subparsers)

    index = commands.add_parser(
        "index", help="write a JSONL manifest of the audio files in a folder",
        epilog="example: tokenlm data index sounds/ --out sounds/data.jsonl",
    )
    index.add_argument("directory", help="folder searched recursively for wav / flac / ogg / mp3 files")
    index.add_argument("--out", default=None, help="manifest to write (default: DIRECTORY/data.jsonl)")
    index.add_argument("--absolute", action="store_true", help="write absolute paths (default: relative to --out)")
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    index.set_defaults(func=_index)

    encode = commands.add_parser(
        "encode", help="pre-encode a manifest's audio to codec tokens (a token cache for LM training)",
        epilog="example: tokenlm data encode sounds/data.jsonl --model-or-codec ckpt/ --out cache/sounds",
    )
    encode.add_argument("manifest", help="JSONL manifest (see `tokenlm data index`)")
    encode.add_argument("--model-or-codec", required=True,
                        help="tokenlm checkpoint folder (uses its codec/) or a Hugging Face EnCodec folder")
    encode.add_argument("--out", required=True, help="cache folder to write")
    encode.add_argument("--segment-duration", type=float, default=None,
                        help="cut files into chunks of this many seconds (default: whole files)")
    encode.add_argument("--bandwidth", type=float, default=None,
                        help="EnCodec bandwidth in kbps (default: the model's)")
    encode.add_argument("--batch-size", type=int, default=8, help="items encoded together (default 8)")
    encode.add_argument("--shard-size", type=int, default=256, help="items per shard file (default 256)")
    encode.add_argument("--device", default=None, help="torch device for the codec, e.g. cuda (default: cpu)")
    encode.add_argument("--quiet", action="store_true", help="no progress bar")
    encode.set_defaults(func=_encode)
    return commands

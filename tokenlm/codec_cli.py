"""``tokenlm codec eval|export``: score a codec per bitrate, and turn a codec training run into an EnCodec folder.

Examples::

    tokenlm codec eval tokenlm/assets/codec --manifest data/synth_sfx16k/test_heldout.jsonl --out codec_report.json
    tokenlm codec export runs/demo_codec --out my_codec      # the newest checkpoint, EMA weights
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load_codec(source: str):
    """An EncodecCodec from an EnCodec folder, or from a codec training run (its newest checkpoint)."""
    from tokenlm.codecs.encodec import EncodecCodec
    from tokenlm.codecs.training.model import CodecTrainee

    path = Path(source)
    if (path / "init").is_dir() and (path / "checkpoints").is_dir():
        return CodecTrainee.from_run(path).to_codec()
    return EncodecCodec.from_pretrained(path)


def _eval(args: argparse.Namespace) -> int:
    import torch

    from tokenlm.eval.codec import evaluate_codec, format_report

    if args.threads:
        torch.set_num_threads(args.threads)
    report = evaluate_codec(_load_codec(args.codec), args.manifest, bandwidths=args.bandwidth, limit=args.limit,
                            out_dir=args.audio_out)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(format_report(report))
    return 0


def _export(args: argparse.Namespace) -> int:
    from tokenlm.codecs.training.model import CodecTrainee

    trainee = CodecTrainee.from_run(args.run, use_ema=not args.no_ema)
    trainee.export_pretrained(args.out)
    print(f"codec written to {args.out}")
    return 0


def add_codec_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``codec eval`` and ``codec export`` on the ``tokenlm`` command's subparsers."""
    parser = commands.add_parser("codec", help="evaluate or export a trained codec")
    sub = parser.add_subparsers(dest="codec_command", required=True)
    ev = sub.add_parser("eval", help="mel distance, SI-SNR and caption-attribute alignment per bitrate")
    ev.add_argument("codec", help="an EnCodec folder, or a codec training run folder (newest checkpoint)")
    ev.add_argument("--manifest", required=True, help="captioned clips (e.g. the synthetic test_heldout.jsonl)")
    ev.add_argument("--bandwidth", type=float, action="append", help="kbps to score (repeatable; default: all)")
    ev.add_argument("--limit", type=int, default=None, help="score only the first N clips")
    ev.add_argument("--out", help="write the report as JSON here")
    ev.add_argument("--audio-out", help="write the reconstructions under this folder, one subfolder per bitrate")
    ev.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    ev.set_defaults(func=_eval)
    ex = sub.add_parser("export", help="write a codec training run's newest checkpoint as an EnCodec folder")
    ex.add_argument("run", help="the run folder (run_dir of the codec recipe)")
    ex.add_argument("--out", required=True, help="the EnCodec folder to write")
    ex.add_argument("--no-ema", action="store_true", help="export the live weights instead of the EMA weights")
    ex.set_defaults(func=_export)
    return parser

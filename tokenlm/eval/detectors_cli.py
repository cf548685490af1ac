"""``tokenlm detectors``: validate the music detectors on a held-out music split and print the table (the work is
in :mod:`tokenlm.eval.validate`; this module imports nothing heavy, so ``tokenlm --help`` stays fast)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def run_detectors(args: argparse.Namespace) -> int:
    """Run :func:`tokenlm.eval.validate.validate_music`, write the JSON report, print the markdown table."""
    from tokenlm.eval.validate import markdown_table, recordings_table, validate_music, validate_recordings

    report = validate_music(args.music, args.split, args.detector, args.limit)
    if args.recordings:
        report["recordings"] = validate_recordings(args.detector, args.limit)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(markdown_table(report))
    if args.recordings:
        print(recordings_table(report["recordings"]))
    return 0


def add_detectors_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``detectors`` on the ``tokenlm`` command's subparsers."""
    parser = commands.add_parser("detectors", help="validate the music detectors on a held-out music split",
                                 epilog="example: tokenlm detectors --music music/ --out detectors.json")
    parser.add_argument("--music", required=True, help="a music set built by `tokenlm data music`")
    parser.add_argument("--split", default="test_heldout_timgm", help="split to judge (default test_heldout_timgm)")
    parser.add_argument("--detector", default=None, help="instrument-family detector folder (default: shipped)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips")
    parser.add_argument("--recordings", action="store_true",
                        help="also judge real recordings: Hydrogen kits, LMMS instrument samples, Asterisk prompts")
    parser.add_argument("--out", default=None, help="write the full report (JSON) here")
    parser.set_defaults(func=run_detectors)
    return parser

"""``tokenlm data synth``: write the synthetic captioned data set."""

from __future__ import annotations

import argparse
import json

EXAMPLE = "tokenlm data synth --n 1000 --out synth --seed 0 --preset sfx16k --duration 1-5"

#: the names of ``tokenlm.data.synth.dataset.PRESETS``, spelled out so that ``--help`` imports no numpy or torch
PRESET_NAMES = ("music32k", "sfx16k")


def parse_duration(text: str) -> float | tuple[float, float]:
    """``"5"`` -> 5.0, ``"1-10"`` -> (1.0, 10.0)."""
    low, sep, high = text.partition("-")
    try:
        return (float(low), float(high)) if sep else float(low)
    except ValueError:
        raise ValueError(f"--duration takes seconds ('5') or a range ('1-10'), got {text!r}") from None


def run_synth(args: argparse.Namespace) -> int:
    """Generate the data set and print where its manifests are."""
    from tokenlm.data.synth.dataset import generate_dataset

    duration = parse_duration(args.duration) if args.duration else None
    manifests = generate_dataset(args.out, args.n, args.seed, args.preset, duration=duration, workers=args.workers)
    for split, path in manifests.items():
        lines = sum(1 for _ in path.open())
        print(f"{split}: {lines} clips -> {path}")
    print(json.dumps({"preset": args.preset, "seed": args.seed, "n": args.n}))
    return 0


def add_synth_parser(data_commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``synth`` on the ``tokenlm data`` subparsers."""
    parser = data_commands.add_parser("synth", help="write the synthetic captioned audio data set",
                                      epilog=f"example: {EXAMPLE}")
    parser.add_argument("--n", type=int, required=True, help="clips in all (train + valid + test_heldout)")
    parser.add_argument("--out", required=True, help="output folder (audio/ and *.jsonl manifests)")
    parser.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same data set")
    parser.add_argument("--preset", choices=PRESET_NAMES, default="sfx16k",
                        help="sfx16k (16 kHz sound effects, 1-5 s) or music32k (32 kHz music, 3-10 s)")
    parser.add_argument("--duration", default=None, help="seconds per clip, or a range such as 1-10")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes rendering clips in parallel (the data set is the same for any number)")
    parser.set_defaults(func=run_synth)
    return parser

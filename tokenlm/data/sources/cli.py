"""``tokenlm data NAME`` for every installed data source (``music``, ``speech``, ``recorded``, ...): the shared
options (``--n``, ``--out``, ``--seed``, ``--workers``, ``--overwrite``, ``--quiet``) plus each source's own."""

from __future__ import annotations

import argparse
import json
import sys

#: options every source gets; the rest of the parsed namespace goes to the source as ``options``
SHARED = ("n", "out", "seed", "workers", "overwrite", "quiet", "func", "command", "data_command", "source_name")


def run_source(args: argparse.Namespace) -> int:
    """Build the data set and print a summary line per split."""
    from tokenlm.data.sources import MissingRequirement, build, get_source

    options = {key: value for key, value in vars(args).items() if key not in SHARED}
    try:
        report = build(get_source(args.source_name), args.out, args.n, args.seed, workers=args.workers,
                       progress=not args.quiet, overwrite=args.overwrite, **options)
    except (MissingRequirement, FileExistsError) as err:
        print(f"tokenlm data {args.source_name}: {err}", file=sys.stderr)
        return 2
    for split, entry in report["splits"].items():
        dropped = f", dropped {entry['dropped']}" if entry["dropped"] else ""
        print(f"{split}: {entry['clips']} clips, {entry['audio_seconds']:.0f} s{dropped} -> {args.out}/{split}.jsonl")
    if report["skipped"]:
        print(f"skipped while planning: {report['skipped']}")
    print(json.dumps({"source": args.source_name, "seed": args.seed, "n": args.n, "seconds": report["seconds"]}))
    return 0


def add_source_parsers(data_commands: argparse._SubParsersAction) -> None:
    """Register ``tokenlm data NAME`` for each installed source (sources are imported to ask for their options;
    a source that fails to import is left out with a note in its help)."""
    from tokenlm.data.sources import available_sources, get_source

    for name in available_sources():
        try:
            source = get_source(name)
        except Exception as err:  # noqa: BLE001 - a broken third-party plugin must not break the CLI
            data_commands.add_parser(name, help=f"(unavailable: {type(err).__name__}: {err})")
            continue
        parser = data_commands.add_parser(name, help=source.help, epilog=f"example: {source.example}")
        parser.add_argument("--n", type=int, required=True, help="clips in all, over every split")
        parser.add_argument("--out", required=True, help="output folder (audio/, one <split>.jsonl per split)")
        parser.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same bytes")
        parser.add_argument("--workers", type=int, default=1, help="render processes (same output for any number)")
        parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
        parser.add_argument("--quiet", action="store_true", help="no progress")
        source.add_arguments(parser)
        parser.set_defaults(func=run_source, source_name=name)

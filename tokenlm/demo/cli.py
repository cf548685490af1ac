"""``tokenlm serve``: the web demo (Gradio; ``pip install 'tokenlm[demo]'``). Light to import: ``tokenlm --help``
loads neither gradio nor torch."""

from __future__ import annotations

import argparse

EXAMPLE = "tokenlm serve --model default --model default-ldm --port 7860"


def run_serve(args: argparse.Namespace) -> int:
    """Serve the demo until interrupted (Ctrl-C)."""
    from tokenlm.demo.app import serve

    try:
        serve(args.model, host=args.host, port=args.port, concurrency=args.concurrency, max_queue=args.max_queue,
              max_duration=args.max_duration, device=args.device)
    except KeyboardInterrupt:
        pass
    return 0


def add_serve_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``serve`` on the ``tokenlm`` command's subparsers."""
    parser = commands.add_parser(
        "serve", help="web demo: generate in the browser (needs the demo extra: pip install 'tokenlm[demo]')",
        epilog=f"example: {EXAMPLE}",
    )
    parser.add_argument("--model", action="append", default=None, metavar="DIR|default",
                        help="a checkpoint folder, 'default' (token LM) or 'default-ldm' (diffusion); repeat to offer "
                             "several, chosen in the page (default: every shipped default model)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                        "only; 0.0.0.0 serves the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="generations run at once; further requests wait in the queue (default 1)")
    parser.add_argument("--max-queue", type=int, default=32, help="requests that may wait in the queue (default 32)")
    parser.add_argument("--max-duration", type=float, default=30.0,
                        help="longest clip a request may ask for, in seconds (default 30)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda (default: cpu)")
    parser.set_defaults(func=run_serve)
    return parser

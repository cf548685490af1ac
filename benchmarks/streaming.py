"""Streaming latency: time to the first audio and whether the stream keeps ahead of real time.

For the shipped default LM and for a random model of the small MusicGen size (512 wide, 8 layers, 4 x 2048 codes,
a tiny T5 and EnCodec: the time is the decoder's), ``TextToAudio.stream`` generates ``--duration`` seconds in chunks
of ``--chunk`` seconds. Reported:

- **first audio**: seconds from the call to the first chunk (targets: default LM <= 0.3 s, small <= 1 s);
- **real-time factor**: generation time over audio time (below 1: faster than real time);
- **slack**: playback starts when the first chunk arrives; each later chunk must arrive before the audio before it
  has played. The smallest margin over all chunks (negative: the stream fell behind, a listener hears a gap).

Usage::

    .venv/bin/python benchmarks/streaming.py              # 10 s, chunks of 0.1 s, best of 3, 2 threads
    .venv/bin/python benchmarks/streaming.py --quick      # a smoke run (2 s, one repeat)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import reports
import torch
from melody_stereo import save_variant, tokenizer_folder
from probes import warn_if_busy

from tokenlm import TextToAudio

PROMPT = "a woodblock ticking at 120 bpm"
TARGETS = {"default": 0.3, "small": 1.0}


def measure(model: TextToAudio, duration: float, chunk: float) -> dict[str, float]:
    """One streamed generation: first-audio latency, real-time factor and the smallest playback slack."""
    start = time.perf_counter()
    arrivals, lengths = [], []
    for audio in model.stream(PROMPT, duration, chunk_seconds=chunk, seed=0):
        arrivals.append(time.perf_counter() - start)
        lengths.append(audio.duration)
    played = [sum(lengths[:i]) for i in range(len(lengths))]  # audio before chunk i
    slack = min(arrivals[0] + before - arrival for arrival, before in zip(arrivals, played, strict=True))
    return {"first_audio_s": arrivals[0], "rtf": arrivals[-1] / duration, "min_slack_s": slack,
            "chunks": len(arrivals)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--chunk", type=float, default=0.1, help="seconds per chunk (default 0.1)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per model (the best first audio counts)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s, one repeat, the tiny size for 'small'")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.repeats = 2.0, 1
    torch.set_num_threads(args.threads)
    warn_if_busy("before the benchmark")
    print(f"streaming: {args.duration:g} s in chunks of {args.chunk:g} s; {reports.cpu_name()}, {args.threads} "
          f"threads, best of {args.repeats}; torch {torch.__version__}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "small"
        save_variant("mono", "tiny" if args.quick else "small", folder, tokenizer_folder(Path(tmp) / "tokenizer"))
        for name, source in (("default", "default"), ("small", folder)):
            model = TextToAudio.from_pretrained(source)
            measure(model, min(1.0, args.duration), args.chunk)  # warm-up: allocation, weight packing
            runs = [measure(model, args.duration, args.chunk) for _ in range(args.repeats)]
            best = min(runs, key=lambda run: run["first_audio_s"])
            results[name] = {**best, "dtype": str(next(model.backend.lm.parameters()).dtype)}
            target = TARGETS[name]
            verdict = "ok" if best["first_audio_s"] <= target else "MISSED"
            behind = "keeps ahead" if min(run["min_slack_s"] for run in runs) >= 0 else "FALLS BEHIND"
            print(f"  {name:8s} first audio {best['first_audio_s']:.3f} s (target <= {target:g} s) {verdict}; "
                  f"real-time factor {best['rtf']:.2f}; smallest slack {min(r['min_slack_s'] for r in runs):+.2f} s "
                  f"({behind}); {results[name]['dtype']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": reports.cpu_name(), **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

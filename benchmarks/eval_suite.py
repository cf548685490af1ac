"""Speed of the evaluation suite, and the detectors' ceiling per attribute on the generator's own clips.

Generates N clips of D seconds (alternating the sfx16k and music32k presets, so every family appears) as
the "generated" set and N more as the reference set, then times ``run_suite`` on them: detectors on both
sets, alignment with shuffled-caption chance, and the Fréchet quality score. A one-clip warm-up runs first
and clip synthesis is timed separately (it is not part of the suite).

    .venv/bin/python benchmarks/eval_suite.py --clips 500 --duration 5
    .venv/bin/python benchmarks/eval_suite.py --quick      # 6 clips of 1 s, 2 shuffles: a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from tokenlm.data.synth import make_clip
from tokenlm.eval import analyze, run_suite
from tokenlm.eval.alignment import score_clips, summarize
from tokenlm.eval.suite import one_torch_thread


def make_set(count: int, duration: float, seed: int) -> list[tuple[np.ndarray, int, str, dict]]:
    """``count`` clips of ``duration`` seconds, alternating sound-effect and music presets."""
    clips = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        clips.append(make_clip(rng, "sfx16k" if index % 2 == 0 else "music32k", duration=duration))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--shuffles", type=int, default=10)
    parser.add_argument("--out", default=None, help="write the timings and ceilings as JSON here")
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 clips of 1 s, 2 shuffles")
    args = parser.parse_args()
    if args.quick:
        args.clips, args.duration, args.shuffles = 6, 1.0, 2

    start = time.perf_counter()
    generated = make_set(args.clips, args.duration, seed=1)
    reference = make_set(args.clips, args.duration, seed=2)
    synthesis_s = time.perf_counter() - start

    with one_torch_thread():  # warm-up: first calls build filterbanks and caches
        analyze(generated[0][0], generated[0][1])

    start = time.perf_counter()
    report = run_suite([(w, r) for w, r, _, _ in generated], [c for _, _, c, _ in generated],
                       [labels for *_, labels in generated], [(w, r) for w, r, _, _ in reference],
                       shuffles=args.shuffles)
    suite_s = time.perf_counter() - start

    with one_torch_thread():  # the ceiling: the detectors on the reference clips against their own labels
        ceiling = summarize(score_clips([analyze(w, r) for w, r, _, _ in reference], [lab for *_, lab in reference]))

    result = {
        "clips": args.clips, "duration_s": args.duration, "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(), "synthesis_s": round(synthesis_s, 2),
        "suite_s": round(suite_s, 2), "timing": {k: round(v, 4) for k, v in report["timing"].items()},
        "ceiling": {name: {"accuracy": round(v["score"], 4), "n": v["n"]} for name, v in ceiling.items()},
        "generated_alignment": report["summary"]["alignment"], "frechet_distance": report["quality"],
    }
    print(json.dumps(result, indent=2))
    print(f"\nsuite on {args.clips} clips of {args.duration:g} s (+ as many reference clips): {suite_s:.1f} s")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()

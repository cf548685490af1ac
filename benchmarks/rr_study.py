"""The representation-regularization study: demo_lm (RR on) against demo_lm_norr (RR off) at equal compute.

Every arm trains the same recipe with the same data, model, steps and seed; only ``solver.rr.enabled`` differs.
Each of ``--seeds`` trains one model per arm (the seed sets the initial weights, the data order and the condition
dropout), then ``tokenlm eval`` scores it on the same held-out captions with the same generation seed. The summary
gives, per attribute, the calibrated alignment of each arm (mean and standard deviation over seeds) and the paired
difference RR − no RR (mean, standard deviation, and the seeds where RR won), plus the wall time per training step
of each arm (what RR costs).

    .venv/bin/python benchmarks/rr_study.py --seeds 0,1,2 --limit 300 model.num_layers=2 solver.steps=800
    .venv/bin/python benchmarks/rr_study.py --quick        # a smoke run of the whole path (about a minute)

Runs are resumable: a run whose export exists is not trained again, a finished evaluation is not redone.
Extra arguments are recipe overrides given to both arms.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

ARMS = {"rr": "demo_lm", "no_rr": "demo_lm_norr"}
QUICK_OVERRIDES = (
    "data.synth.n=64", "data.synth.duration=1.0", "data.segment_duration=1.0", "solver.steps=6",
    "solver.batch_size=4", "solver.warmup_steps=2", "model.dim=64", "model.num_layers=1", "model.num_heads=2",
    "model.ffn_dim=128", "checkpoint.every=100", "log.tensorboard=false",
)


def train_arm(recipe: str, seed: int, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Train one model (unless its export exists); returns its export folder, steps and wall seconds."""
    from tokenlm.train.main import compose_recipe, run

    args = [f"recipe={recipe}", f"seed={seed}", f"run_dir={run_dir}", *overrides]
    steps = int(compose_recipe(args)["solver"]["steps"])
    timing = run_dir / "study_timing.json"
    if (run_dir / "export" / "config.json").is_file() and timing.is_file():
        return json.loads(timing.read_text())
    started = time.perf_counter()
    export = run(args)
    record = {"export": str(export), "steps": steps, "train_s": round(time.perf_counter() - started, 2)}
    timing.write_text(json.dumps(record))
    return record


def evaluate(export: str, manifest: str, limit: int, out: Path, sampling: list[str]) -> dict[str, Any]:
    """``tokenlm eval`` of one export on the first ``limit`` captions of ``manifest`` (generation seed 0)."""
    from tokenlm.cli import main as tokenlm_main

    report = out / "report.json"
    if not report.is_file():
        code = tokenlm_main(["eval", "--manifest", manifest, "--model", export, "--limit", str(limit), "--seed", "0",
                          "--out", str(out), *sampling])
        if code != 0:
            raise RuntimeError(f"tokenlm eval failed on {export} (exit {code})")
    return json.loads(report.read_text())


def calibrated(report: dict[str, Any]) -> dict[str, float]:
    """Attribute -> calibrated alignment (attributes without a calibrated value are left out)."""
    return {name: values["calibrated"] for name, values in report["alignment"].items()
            if values.get("calibrated") is not None and math.isfinite(values["calibrated"])}


def spread(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarize(scores: dict[str, dict[int, dict[str, float]]], timing: dict[str, dict[int, dict]]) -> dict[str, Any]:
    """Per attribute: each arm's mean / std over seeds and the paired difference RR − no RR."""
    seeds = sorted(set(scores["rr"]) & set(scores["no_rr"]))
    attributes = sorted(set.intersection(*(set(scores[arm][s]) for arm in ARMS for s in seeds)))
    table = {}
    for name in attributes:
        rr = [scores["rr"][s][name] for s in seeds]
        no_rr = [scores["no_rr"][s][name] for s in seeds]
        difference = [a - b for a, b in zip(rr, no_rr, strict=True)]
        table[name] = {"rr": spread(rr), "no_rr": spread(no_rr), "difference": spread(difference),
                       "rr_wins": sum(d > 0 for d in difference), "seeds": len(seeds)}
    per_step = {arm: spread([timing[arm][s]["train_s"] / timing[arm][s]["steps"] for s in seeds]) for arm in ARMS}
    return {"seeds": seeds, "attributes": table, "train_s_per_step": per_step,
            "rr_cost_per_step": per_step["rr"]["mean"] / per_step["no_rr"]["mean"] - 1.0}


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table."""
    lines = ["| attribute | RR on | RR off | RR − off (mean ± std) | RR better on |", "|---|---|---|---|---|"]
    for name, row in summary["attributes"].items():
        rr, off, diff = row["rr"], row["no_rr"], row["difference"]
        lines.append(f"| {name} | {rr['mean']:.2f} ± {rr['std']:.2f} | {off['mean']:.2f} ± {off['std']:.2f} | "
                     f"{diff['mean']:+.2f} ± {diff['std']:.2f} | {row['rr_wins']}/{row['seeds']} seeds |")
    cost = summary["train_s_per_step"]
    lines.append("")
    lines.append(f"Training: {cost['rr']['mean']:.3f} s/step with RR, {cost['no_rr']['mean']:.3f} without "
                 f"({summary['rr_cost_per_step']:+.1%}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated (default 0,1,2)")
    parser.add_argument("--limit", type=int, default=300, help="held-out captions per evaluation (default 300)")
    parser.add_argument("--out", default="runs/rr_study", help="study folder (runs, reports, summary)")
    parser.add_argument("--manifest", default=None,
                        help="evaluation manifest (default: test_heldout.jsonl of the recipe's synthetic data)")
    parser.add_argument("--top-k", type=int, default=None, help="generation top-k (default: the models' own)")
    parser.add_argument("--temperature", type=float, default=None, help="generation temperature")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run of the whole study (two seeds)")
    args, overrides = parser.parse_known_args(argv)
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")] if not args.quick else [0, 1]
    if args.quick:
        overrides = [f"data.synth.out={out / 'data'}", *QUICK_OVERRIDES, *overrides]
        args.limit = min(args.limit, 8)
    sampling = [*(["--top-k", str(args.top_k)] if args.top_k is not None else []),
                *(["--temperature", str(args.temperature)] if args.temperature is not None else [])]
    from tokenlm.train.main import compose_recipe

    manifest = args.manifest or str(Path(compose_recipe(["recipe=demo_lm", *overrides])["data"]["synth"]["out"])
                                    / "test_heldout.jsonl")
    scores: dict[str, dict[int, dict[str, float]]] = {arm: {} for arm in ARMS}
    timing: dict[str, dict[int, dict]] = {arm: {} for arm in ARMS}
    for seed in seeds:
        for arm, recipe in ARMS.items():
            run_dir = out / f"{arm}_seed{seed}"
            timing[arm][seed] = train_arm(recipe, seed, run_dir, overrides)
            report = evaluate(timing[arm][seed]["export"], manifest, args.limit, run_dir / "eval", sampling)
            scores[arm][seed] = calibrated(report)
    summary = summarize(scores, timing)
    summary["overrides"] = overrides
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary) + "\n")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

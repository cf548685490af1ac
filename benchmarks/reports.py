"""What the speed benchmarks print: ``generate.py``'s speed table, bandwidth floor and memory lines, and
``train_step.py``'s step-time table, headline ratio and machine-load lines. See benchmarks/README.md for what every
number means."""

from __future__ import annotations

import os
import statistics

from probes import PHASES, Side, Timing, copy_bandwidth, last_level_cache_bytes, loss_drift

MB = 1e6

# ---------------------------------------------------------------------------------------------- generate.py

ROW = "{:<6} {:>9} {:>9}   {:>9} {:>9}   {:>7}   {}"


def print_speed_header() -> None:
    """Column titles of the generation speed table."""
    print(ROW.format("", "tokenlm", "", "transf.", "", "", ""))
    print(ROW.format("size", "steps/s", "(median)", "steps/s", "(median)", "ratio", "target"))


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo), so figures from different machines can be told apart."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def print_speed(name: str, timings: dict[str, Timing], steps: int, target: float, label_only: bool = False) -> float:
    """One table row: best (and median) steps/s of both sides and their ratio against ``target``; returns tokenlm's
    best steps/s. ``label_only``: ``name`` is printed on a line of its own above the row (a long label)."""
    ours, theirs = timings["tokenlm"], timings["transformers"]
    ratio = ours.steps_per_s(steps) / theirs.steps_per_s(steps)
    verdict = "ok" if ratio >= target else "MISSED"
    if label_only:
        print(f"  {name}:")
        name = ""
    print(
        ROW.format(
            name,
            f"{ours.steps_per_s(steps):.1f}",
            f"({ours.steps_per_s(steps, best=False):.1f})",
            f"{theirs.steps_per_s(steps):.1f}",
            f"({theirs.steps_per_s(steps, best=False):.1f})",
            f"{ratio:.2f}x",
            f">= {target:g}x {verdict}",
        )
    )
    return ours.steps_per_s(steps)


def print_floor(read_bytes: int, kv_cache_bytes: int, steps_per_s: float) -> None:
    """Weight bytes read per step (``read_bytes``), copy bandwidth, and tokenlm's speed against the bandwidth floor;
    ``kv_cache_bytes`` is the whole self-attention cache of the run."""
    bandwidth = copy_bandwidth()
    floor_s = read_bytes / bandwidth
    fraction = steps_per_s * floor_s  # tokenlm steps/s over floor steps/s
    kv_read = kv_cache_bytes / 2  # step t reads t of the cache's steps: half of it on average
    print(f"  weights read per step     {read_bytes / MB:8.1f} MB (all but the embedding tables and cross-attn k/v)")
    print(f"  copy bandwidth            {bandwidth / 1e9:8.2f} GB/s (best 256 MB copy, read + write)")
    print(f"  bandwidth floor           {floor_s * 1e3:8.2f} ms/step = {1 / floor_s:.1f} steps/s")
    print(f"  tokenlm                   {1e3 / steps_per_s:8.2f} ms/step = {fraction:.0%} of the floor's steps/s")
    print(f"  (not in the floor: {kv_read / MB:.1f} MB of KV cache read per step on average)")
    cache = last_level_cache_bytes()
    if cache is not None and cache >= read_bytes:
        print(
            f"  (the {cache / 2**20:.0f} MiB last-level cache can hold the weights: the floor is a DRAM-bandwidth "
            "figure, which a warm cache may beat)"
        )


def print_memory(memory: dict[str, float | bool], target: float) -> None:
    """Measured peak extra memory against weights + KV cache (at most ``target`` times that)."""
    expected = memory["weights"] + memory["kv_cache"]
    ratio = memory["peak"] / expected
    verdict = "ok" if ratio <= target else "MISSED"
    print(
        f"  peak extra memory         {memory['peak'] / MB:8.1f} MB (RSS over a warmed-up baseline; "
        f"{memory['built'] / MB:.1f} MB after building the model)"
    )
    if "build_peak" in memory:
        print(f"    while building           {memory['build_peak'] / MB:8.1f} MB (float32 weights, then cast)")
        print(f"    while generating         {memory['generation_peak'] / MB:8.1f} MB "
              f"({memory['generation_peak'] / expected:.2f}x weights + KV cache)")
    print(
        f"  weights + KV cache        {expected / MB:8.1f} MB ({memory['weights'] / MB:.1f} + "
        f"{memory['kv_cache'] / MB:.1f})"
    )
    print(f"  ratio                     {ratio:8.2f}x   <= {target}x {verdict}")
    if not memory["peak_reset"]:
        print("  (could not reset VmHWM: the peak may include the pre-baseline start-up and read high)")


# ---------------------------------------------------------------------------------------------- train_step.py


def print_step_report(sides: list[Side], steps: int, *, target: float, loss_tolerance: float, smoke: bool,
                      rr_pair: tuple[str, str] | None = None) -> None:
    """Per-side step times, the headline ratio (transformers / tokenlm, the first two sides) against ``target``,
    the check that both sides kept doing the same arithmetic, and the RR overhead where ``rr_pair`` (with, without)
    names two sides that ran."""
    columns = " ".join(f"{phase + ' ms':>13}" for phase in PHASES)
    print(f"\n{'side':<20} {'median ms':>10} {'min ms':>9} {'max ms':>9} {columns} {'CPU ms':>9}")
    for side in sides:
        t = side.times
        phases = " ".join(f"{t.median_ms(p):13.1f}" for p in PHASES)
        spread = f"{t.median_ms():10.1f} {t.min_ms():9.1f} {1e3 * max(t.total):9.1f}"
        print(f"{side.name:<20} {spread} {phases} {t.cpu_ms():9.1f}")
    ours, theirs = sides[0].times, sides[1].times
    ratio = theirs.median_ms() / ours.median_ms()
    paired = statistics.median(t / o for t, o in zip(theirs.total, ours.total, strict=True))
    verdict = "ok" if ratio >= target else "MISSED"
    if smoke:
        verdict = "(the target is for the small size; --quick only checks that the benchmark runs)"
    print(
        f"\nratio transformers / tokenlm: {ratio:.2f}x (median ms / median ms)   target >= {target}x {verdict}\n"
        f"  (median of per-round ratios {paired:.2f}x; fastest / fastest step {theirs.min_ms() / ours.min_ms():.2f}x; "
        f"CPU ms / CPU ms {theirs.cpu_ms() / ours.cpu_ms():.2f}x)"
    )
    drift = loss_drift(ours, theirs)
    flag = "ok" if drift <= loss_tolerance else "DIVERGED: the two sides no longer do the same arithmetic"
    print(
        f"same arithmetic: losses of the {steps} timed steps differ by up to {drift:.1e} (relative) {flag}; "
        f"loss {ours.losses[0]:.4f} -> {ours.losses[-1]:.4f}"
    )
    named = {side.name: side.times for side in sides}
    if rr_pair is not None and all(name in named for name in rr_pair):
        on, off = named[rr_pair[0]], named[rr_pair[1]]
        with_rr, without = on.median_ms(), off.median_ms()
        paired = statistics.median(a - b for a, b in zip(on.total, off.total, strict=True))
        print(
            f"RR overhead on a CFG batch: {with_rr - without:+.1f} ms/step ({(with_rr / without - 1) * 100:+.1f}%; "
            f"median of per-round differences {1e3 * paired:+.1f} ms)"
        )


def print_load(before: float, after: float, utilisation: float, threads: int) -> None:
    """How busy the machine was: other work running makes every number above noisy."""
    cpus = len(os.sched_getaffinity(0))
    print(
        f"machine: 1-min load average {before:.2f} before, {after:.2f} after (this run adds ~{threads}), {cpus} CPUs; "
        f"this process got {utilisation:.2f} CPU-seconds per second of timed steps ({threads} threads)"
    )
    if before > 0.5 or utilisation < 0.8 * min(threads, cpus):
        print(
            "WARNING: other work shared the CPUs: timings are noisy, and with more threads than free cores every "
            "parallel operator waits for a descheduled thread. Re-run on an idle machine for numbers to report."
        )

"""Generation speed and memory of tokenlm's LM against transformers' MusicGen decoder.

Both sides generate one sample with classifier-free guidance (effective batch 2), top-k 250, temperature 1,
``--steps`` decoder steps over 4 codebooks x 2048 codes (delay pattern), cross-attending to a 16-token
condition. transformers runs a randomly initialised ``MusicgenForCausalLM``; tokenlm runs an ``LMModel`` holding
the very same weights (copied over and checked logit for logit), so the two do identical arithmetic.

Usage::

    .venv/bin/python benchmarks/generate.py                  # 500 steps, tiny and small, 3 repeats, 2 threads
    .venv/bin/python benchmarks/generate.py --quick          # 50 steps, 1 repeat: a smoke run of a few seconds
    .venv/bin/python benchmarks/generate.py --sizes small --repeats 5 --threads 1
    .venv/bin/python benchmarks/generate.py --profile        # also: where tokenlm's per-step time goes (small)

See benchmarks/README.md for what every number means.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import musicgen_reference as reference
import torch
import transformers
from transformers import DynamicCache, EncoderDecoderCache, MusicgenForCausalLM

from conditioners.base import Condition
from tokenlm.lm.generate import generate_codes
from tokenlm.lm.model import LMConfig, LMModel
from tokenlm.lm.patterns import build_pattern
from tokenlm.lm.sampling import SamplingParams

NUM_CODEBOOKS = 4
CARDINALITY = 2048
CONDITION_LENGTH = 16
TOP_K = 250
CFG_COEF = 3.0
WARMUP_STEPS = 8
#: tokenlm must be at least this many times faster than transformers
SPEED_TARGETS = {"tiny": 3.0, "small": 2.0}
#: peak extra memory of a generation over weights + KV cache must stay below this
MEMORY_TARGET = 1.5
#: size of the tensor copied to measure memory bandwidth
COPY_BYTES = 256 * 2**20
MB = 1e6


@dataclass(frozen=True)
class Size:
    """Decoder dimensions of one benchmarked model."""

    dim: int
    layers: int
    heads: int
    ffn: int


SIZES = {
    "tiny": Size(dim=64, layers=2, heads=4, ffn=256),
    "small": Size(dim=512, layers=8, heads=8, ffn=2048),
}


@dataclass
class Timing:
    """Wall-clock seconds of the repeated generations of one side."""

    seconds: list[float]

    def steps_per_s(self, steps: int, best: bool = True) -> float:
        """Steps per second of the fastest run (``best``) or of the median run."""
        return steps / (min(self.seconds) if best else statistics.median(self.seconds))


# ---------------------------------------------------------------------------------------------- models


def build_hf(size: Size, seed: int = 0) -> MusicgenForCausalLM:
    """The reference decoder of ``size`` (eval mode)."""
    return reference.build_hf(size.dim, size.layers, size.heads, size.ffn, NUM_CODEBOOKS, CARDINALITY, seed).eval()


def lm_from_hf(hf: MusicgenForCausalLM) -> LMModel:
    """tokenlm's LM with the weights of ``hf`` (eval mode)."""
    return reference.lm_from_hf(hf).eval()


@torch.no_grad()
def check_same_logits(lm: LMModel, hf: MusicgenForCausalLM, embeds: torch.Tensor) -> None:
    """Raise when the two models disagree on the logits of a random 12-step sequence (a bad weight copy)."""
    sequence = torch.randint(0, CARDINALITY + 1, (1, NUM_CODEBOOKS, 12))  # the special token included
    mask = torch.ones(embeds.shape[:2], dtype=torch.bool)
    ours = lm(sequence, lm.cross_context(embeds, mask))  # [1, K, T, card]
    theirs = hf(input_ids=sequence.flatten(0, 1), encoder_hidden_states=embeds, use_cache=False).logits
    theirs = theirs.view_as(ours)  # [B * K, T, card] -> [B, K, T, card]
    if not torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4):
        error = (ours - theirs).abs().max().item()
        raise RuntimeError(f"tokenlm and transformers logits differ by up to {error:.2e}: the weight copy is wrong")


def conditions(dim: int, seed: int = 0) -> tuple[Condition, Condition]:
    """A random 16-token condition ``[1, 16, dim]`` and the null one (zeros, all-False mask)."""
    embeds = torch.randn(1, CONDITION_LENGTH, dim, generator=torch.Generator().manual_seed(seed))
    cond = Condition(embeds, torch.ones(1, CONDITION_LENGTH, dtype=torch.bool))
    null = Condition(torch.zeros_like(embeds), torch.zeros(1, CONDITION_LENGTH, dtype=torch.bool))
    return cond, null


# ---------------------------------------------------------------------------------------------- generation


def tokenlm_generate(lm: LMModel, cond: Condition, null: Condition, steps: int) -> torch.Tensor:
    """``steps`` decoder steps of tokenlm (``steps - 3`` frames, delay pattern) -> codes ``[1, K, steps - 3]``."""
    pattern = build_pattern("delay", NUM_CODEBOOKS, steps - (NUM_CODEBOOKS - 1))
    return generate_codes(lm, pattern, cond, null, SamplingParams(top_k=TOP_K, cfg_coef=CFG_COEF))


def hf_generate(hf: MusicgenForCausalLM, cond: Condition, steps: int) -> torch.Tensor:
    """``steps`` decoder steps of transformers' MusicGen decoder with CFG -> codes ``[1, K, steps - 3]``.

    ``MusicgenForCausalLM.generate`` doubles the decoder batch itself when ``guidance_scale > 1``; the caller
    supplies the doubled encoder states, conditional rows first, the null rows (zeros, masked out) second, just as
    ``MusicgenForConditionalGeneration`` builds them. What this transformers version needs spelled out:

    - an ``EncoderDecoderCache``: with the default ``DynamicCache`` the cross-attention keys are appended to the
      self-attention cache and the first forward fails on mismatched shapes;
    - ``decoder_start_token_id`` and ``num_return_sequences``, which the decoder-only path leaves unset;
    - an all-ones ``attention_mask``: the start token equals the pad token, so an inferred mask would hide it
      (and cost a masked attention kernel every step).
    """
    start = torch.full((NUM_CODEBOOKS, 1), CARDINALITY, dtype=torch.long)  # [B * K, 1], the start token
    cache = EncoderDecoderCache(DynamicCache(config=hf.config), DynamicCache(config=hf.config))
    return hf.generate(
        start,
        attention_mask=torch.ones_like(start),
        encoder_hidden_states=torch.cat([cond.embeds, torch.zeros_like(cond.embeds)]),
        encoder_attention_mask=torch.cat([cond.mask, torch.zeros_like(cond.mask)]).long(),
        past_key_values=cache,
        do_sample=True,
        top_k=TOP_K,
        temperature=1.0,
        guidance_scale=CFG_COEF,
        max_new_tokens=steps,
        decoder_start_token_id=CARDINALITY,
        num_return_sequences=1,
    )


def count_forwards(module: torch.nn.Module, run: Callable[[], torch.Tensor]) -> int:
    """How many decoder steps ``module`` runs during ``run()``: forward calls, plus tokenlm's single-step
    ``decode_step`` calls (the lean path it takes after the prefill)."""
    calls = 0

    def hook(*_: object) -> None:
        nonlocal calls
        calls += 1

    handle = module.register_forward_pre_hook(hook)
    step = getattr(module, "decode_step", None)
    if step is not None:
        def counted_step(*args: object, **kwargs: object) -> torch.Tensor:
            hook()
            return step(*args, **kwargs)

        module.decode_step = counted_step  # instance attribute shadows the method for this run only
    try:
        run()
    finally:
        handle.remove()
        if step is not None:
            del module.decode_step
    return calls


def check_output(name: str, codes: torch.Tensor, steps: int) -> None:
    """Raise unless ``codes`` holds all ``steps - 3`` frames (no early stop, no short run)."""
    expected = (1, NUM_CODEBOOKS, steps - (NUM_CODEBOOKS - 1))
    if tuple(codes.shape) != expected:
        raise RuntimeError(f"{name} returned codes {tuple(codes.shape)}, expected {expected}")


def warm_up(runners: dict[str, tuple[torch.nn.Module, Callable[[int], torch.Tensor]]]) -> None:
    """Run each side for a few steps, checking that each step is exactly one decoder forward."""
    for name, (module, run) in runners.items():
        calls = count_forwards(module, lambda run=run: run(WARMUP_STEPS))
        if calls != WARMUP_STEPS:
            raise RuntimeError(f"{name} made {calls} decoder calls for {WARMUP_STEPS} steps")


def time_interleaved(runs: dict[str, Callable[[], torch.Tensor]], steps: int, repeats: int) -> dict[str, Timing]:
    """Time ``repeats`` runs of each side, alternating sides so slow phases of a busy machine hit both."""
    timings = {name: Timing([]) for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()
            start = time.perf_counter()
            codes = run()
            timings[name].seconds.append(time.perf_counter() - start)
            check_output(name, codes, steps)
    return timings


# ---------------------------------------------------------------------------------------------- floors


def weight_bytes_per_step(lm: LMModel) -> int:
    """Parameter bytes one decoder step must read.

    Everything but the embedding tables (a step reads one row per codebook) and the cross-attention key/value
    projections (applied once to the condition, before the first step).
    """
    total = sum(p.numel() * p.element_size() for p in lm.parameters())
    embeddings = lm.embeddings.numel() * lm.embeddings.element_size()
    cross_kv = sum(b.cross_attn.kv.weight.numel() * b.cross_attn.kv.weight.element_size() for b in lm.blocks)
    rows = lm.config.num_codebooks * lm.config.dim * lm.embeddings.element_size()
    return total - embeddings - cross_kv + rows


def kv_cache_bytes(lm: LMModel, steps: int, batch: int = 2) -> int:
    """Self-attention keys and values of ``steps`` steps for ``batch`` rows (float32)."""
    return 2 * lm.config.num_layers * batch * steps * lm.config.dim * 4


def weight_bytes(lm: LMModel) -> int:
    """Bytes of all of the LM's parameters."""
    return sum(p.numel() * p.element_size() for p in lm.parameters())


def copy_bandwidth(repeats: int = 7) -> float:
    """Best ``dst.copy_(src)`` bandwidth in bytes/s over ``repeats`` copies of 256 MB float32.

    Counted the STREAM "Copy" way: bytes read plus bytes written (2 x 256 MB per copy).
    """
    src = torch.ones(COPY_BYTES // 4)
    dst = torch.zeros_like(src)  # both written once, so every page is mapped before timing
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * COPY_BYTES / best


# ---------------------------------------------------------------------------------------------- memory


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current VmRSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def memory_probe(steps: int) -> dict[str, float | bool]:
    """Peak resident memory added by building the small LM and generating ``steps`` steps (run in a fresh process).

    A tiny model generates a few steps first and is dropped, so the runtime's one-off costs (thread pools, oneDNN
    and allocator set-up, library pages touched) are in the baseline. Then the peak RSS is reset to the baseline,
    the small LM is built (its weights become resident) and it generates; the peak RSS over the baseline is the
    memory the model and one generation need.
    """
    tiny = LMModel(LMConfig(dim=64, num_layers=1, num_heads=4, ffn_dim=64)).eval()
    tokenlm_generate(tiny, *conditions(64), WARMUP_STEPS)
    del tiny
    gc.collect()
    size = SIZES["small"]
    baseline_kb = _proc_status_kb("VmRSS")
    reset = _reset_peak_rss()
    torch.manual_seed(0)
    lm = LMModel(LMConfig(dim=size.dim, num_layers=size.layers, num_heads=size.heads, ffn_dim=size.ffn)).eval()
    cond, null = conditions(size.dim)
    built_kb = _proc_status_kb("VmRSS")
    check_output("tokenlm", tokenlm_generate(lm, cond, null, steps), steps)
    peak_kb = _proc_status_kb("VmHWM")
    return {
        "baseline": baseline_kb * 1024,
        "built": (built_kb - baseline_kb) * 1024,
        "peak": (peak_kb - baseline_kb) * 1024,
        "weights": weight_bytes(lm),
        "kv_cache": kv_cache_bytes(lm, steps),
        "peak_reset": reset,
    }


def run_memory_probe(steps: int, threads: int) -> dict[str, float | bool]:
    """:func:`memory_probe` in a fresh interpreter, so nothing this process allocated is counted or reused."""
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-probe", f"--steps={steps}"]
    command.append(f"--threads={threads}")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- profile


def profile_tokenlm(lm: LMModel, cond: Condition, null: Condition, steps: int, rows: int = 20) -> None:
    """Print the operators taking most of tokenlm's time in one generation (torch.profiler, CPU)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        tokenlm_generate(lm, cond, null, steps)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


# ---------------------------------------------------------------------------------------------- report


def bench_size(name: str, steps: int, repeats: int) -> tuple[dict[str, Timing], LMModel, Condition, Condition]:
    """Build both models of size ``name``, warm them up, and time ``repeats`` generations of each."""
    hf = build_hf(SIZES[name])
    lm = lm_from_hf(hf)
    cond, null = conditions(lm.config.dim)
    check_same_logits(lm, hf, cond.embeds)
    warm_up(
        {
            "tokenlm": (lm, lambda n: tokenlm_generate(lm, cond, null, n)),
            "transformers": (hf.model.decoder, lambda n: hf_generate(hf, cond, n)),
        }
    )
    runs = {
        "tokenlm": lambda: tokenlm_generate(lm, cond, null, steps),
        "transformers": lambda: hf_generate(hf, cond, steps),
    }
    return time_interleaved(runs, steps, repeats), lm, cond, null


ROW = "{:<6} {:>9} {:>9}   {:>9} {:>9}   {:>7}   {}"


def print_header() -> None:
    """Column titles of the speed table."""
    print(ROW.format("", "tokenlm", "", "transf.", "", "", ""))
    print(ROW.format("size", "steps/s", "(median)", "steps/s", "(median)", "ratio", "target"))


def print_speed(name: str, timings: dict[str, Timing], steps: int) -> float:
    """One table row: best (and median) steps/s of both sides and their ratio; returns tokenlm's best steps/s."""
    ours, theirs = timings["tokenlm"], timings["transformers"]
    ratio = ours.steps_per_s(steps) / theirs.steps_per_s(steps)
    target = SPEED_TARGETS[name]
    verdict = "ok" if ratio >= target else "MISSED"
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


def print_floor(lm: LMModel, steps_per_s: float, steps: int) -> None:
    """Weight bytes read per step, copy bandwidth, and tokenlm's speed against the bandwidth floor."""
    read = weight_bytes_per_step(lm)
    bandwidth = copy_bandwidth()
    floor_s = read / bandwidth
    fraction = steps_per_s * floor_s  # tokenlm steps/s over floor steps/s
    kv_read = kv_cache_bytes(lm, steps) / 2  # step t reads t of the cache's steps: half of it on average
    print(f"  weights read per step     {read / MB:8.1f} MB (all but the embedding tables and cross-attn k/v)")
    print(f"  copy bandwidth            {bandwidth / 1e9:8.2f} GB/s (best 256 MB copy, read + write)")
    print(f"  bandwidth floor           {floor_s * 1e3:8.2f} ms/step = {1 / floor_s:.1f} steps/s")
    print(f"  tokenlm                   {1e3 / steps_per_s:8.2f} ms/step = {fraction:.0%} of the floor's steps/s")
    print(f"  (not in the floor: {kv_read / MB:.1f} MB of KV cache read per step on average)")
    cache = last_level_cache_bytes()
    if cache is not None and cache >= read:
        print(
            f"  (the {cache / 2**20:.0f} MiB last-level cache can hold the weights: the floor is a DRAM-bandwidth "
            "figure, which a warm cache may beat)"
        )


def last_level_cache_bytes() -> int | None:
    """Size of CPU 0's largest cache as Linux reports it (shared with other tenants on a VM), or None."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip()
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        sizes.append(int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
    return max(sizes, default=None)


def print_memory(memory: dict[str, float | bool]) -> None:
    """Measured peak extra memory against weights + KV cache."""
    expected = memory["weights"] + memory["kv_cache"]
    ratio = memory["peak"] / expected
    verdict = "ok" if ratio <= MEMORY_TARGET else "MISSED"
    print(
        f"  peak extra memory         {memory['peak'] / MB:8.1f} MB (RSS over a warmed-up baseline; "
        f"{memory['built'] / MB:.1f} MB after building the model)"
    )
    print(
        f"  weights + KV cache        {expected / MB:8.1f} MB ({memory['weights'] / MB:.1f} + "
        f"{memory['kv_cache'] / MB:.1f})"
    )
    print(f"  ratio                     {ratio:8.2f}x   <= {MEMORY_TARGET}x {verdict}")
    if not memory["peak_reset"]:
        print("  (could not reset VmHWM: the peak may include the pre-baseline start-up and read high)")


def warn_if_busy(when: str) -> None:
    """Print a warning when other processes keep the CPUs busy (timings then mean little)."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5:
        print(f"WARNING: load average {load:.2f} on {cores} cores {when}: other work is running, timings are noisy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="decoder steps per generation (default 500)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--sizes", default="tiny,small", help="comma-separated sizes: tiny, small")
    parser.add_argument("--repeats", type=int, default=3, help="timed generations per side (best one counts)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 steps, 1 repeat")
    parser.add_argument("--profile", action="store_true", help="profile one small-size tokenlm generation")
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 50, 1
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {', '.join(SIZES)}")
    if args.steps < max(NUM_CODEBOOKS, WARMUP_STEPS) or args.repeats < 1 or args.threads < 1:
        parser.error(f"need --steps >= {max(NUM_CODEBOOKS, WARMUP_STEPS)}, --repeats >= 1, --threads >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    if args.memory_probe:
        print(json.dumps(memory_probe(args.steps)))
        return
    print(
        f"batch 1 + CFG {CFG_COEF:g} (effective batch 2), top-k {TOP_K}, temperature 1, {args.steps} steps, "
        f"{NUM_CODEBOOKS} x {CARDINALITY} codes, {CONDITION_LENGTH}-token condition, {args.threads} threads, "
        f"best of {args.repeats}; torch {torch.__version__}, transformers {transformers.__version__}"
    )
    warn_if_busy("before the run")
    print_header()
    for name in args.sizes:
        timings, lm, cond, null = bench_size(name, args.steps, args.repeats)
        steps_per_s = print_speed(name, timings, args.steps)
        if name == "small":
            print_floor(lm, steps_per_s, args.steps)
            print_memory(run_memory_probe(args.steps, args.threads))
            if args.profile:
                profile_tokenlm(lm, cond, null, args.steps)


if __name__ == "__main__":
    main()

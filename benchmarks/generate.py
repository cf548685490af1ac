"""Generation speed and memory of tokenlm's LM against transformers' MusicGen decoder.

Both sides generate one sample with classifier-free guidance (effective batch 2), top-k 250, temperature 1,
``--steps`` decoder steps over 4 codebooks x 2048 codes (delay pattern), cross-attending to a 16-token
condition. transformers runs a randomly initialised ``MusicgenForCausalLM``; tokenlm runs an ``LMModel`` holding
the very same weights (copied over and checked logit for logit), so the two do identical arithmetic in float32.

tokenlm runs in the dtype ``TextToAudio.from_pretrained`` picks by default (``--dtype auto``: bf16 weights on a CPU
with AVX-512 BF16 or AMX, float32 elsewhere). It is compared with transformers at its default float32, and, when
that dtype is bf16, also with transformers cast to bf16 (what a user who knows the trick would run).

Usage::

    .venv/bin/python benchmarks/generate.py                  # 500 steps, tiny and small, 3 repeats, 2 threads
    .venv/bin/python benchmarks/generate.py --quick          # 50 steps, 1 repeat: a smoke run of a few seconds
    .venv/bin/python benchmarks/generate.py --sizes small --repeats 5 --threads 1
    .venv/bin/python benchmarks/generate.py --profile        # also: where tokenlm's per-step time goes (small)

The transformers side lives in ``musicgen_reference.py``, the timing and memory probes in ``probes.py``, the
printed tables in ``reports.py``. See benchmarks/README.md for what every number means.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import musicgen_reference as reference
import reports
import torch
import transformers
from probes import (
    Timing,
    count_forwards,
    proc_status_kb,
    profile,
    reset_peak_rss,
    time_interleaved,
    warn_if_busy,
)
from transformers import MusicgenForCausalLM

from conditioners.base import Condition
from tokenlm.common.device import cpu_has_native_bf16, weight_dtype
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
#: tokenlm (default dtype) must be at least this many times faster than transformers in float32
SPEED_TARGETS = {"tiny": 4.0, "small": 3.0}
#: ... and this many times faster than transformers cast to the same (bf16) dtype
SAME_DTYPE_TARGET = 1.5
#: peak extra memory of a generation over weights + KV cache must stay below this
MEMORY_TARGET = 1.5


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


# ---------------------------------------------------------------------------------------------- models


def build_hf(size: Size, seed: int = 0) -> MusicgenForCausalLM:
    """The reference decoder of ``size`` (eval mode)."""
    return reference.build_hf(size.dim, size.layers, size.heads, size.ffn, NUM_CODEBOOKS, CARDINALITY, seed).eval()


def lm_from_hf(hf: MusicgenForCausalLM) -> LMModel:
    """tokenlm's LM with the weights of ``hf`` (eval mode)."""
    return reference.lm_from_hf(hf).eval()


def conditions(dim: int, seed: int = 0) -> tuple[Condition, Condition]:
    """A random 16-token condition ``[1, 16, dim]`` and the null one (zeros, all-False mask)."""
    embeds = torch.randn(1, CONDITION_LENGTH, dim, generator=torch.Generator().manual_seed(seed))
    cond = Condition(embeds, torch.ones(1, CONDITION_LENGTH, dtype=torch.bool))
    null = Condition(torch.zeros_like(embeds), torch.zeros(1, CONDITION_LENGTH, dtype=torch.bool))
    return cond, null


def size_dtype(dtype: str, device: torch.device, name: str) -> torch.dtype:
    """tokenlm's weight dtype for size ``name`` under ``--dtype``: what ``set_dtype`` picks for an LM of that size."""
    size = SIZES[name]
    with torch.device("meta"):  # the parameter count without allocating
        lm = LMModel(LMConfig(num_codebooks=NUM_CODEBOOKS, cardinality=CARDINALITY, dim=size.dim,
                              num_layers=size.layers, num_heads=size.heads, ffn_dim=size.ffn))
    return weight_dtype(dtype, device, sum(p.numel() for p in lm.parameters()))


# ---------------------------------------------------------------------------------------------- generation


def tokenlm_generate(lm: LMModel, cond: Condition, null: Condition, steps: int) -> torch.Tensor:
    """``steps`` decoder steps of tokenlm (``steps - 3`` frames, delay pattern) -> codes ``[1, K, steps - 3]``."""
    pattern = build_pattern("delay", NUM_CODEBOOKS, steps - (NUM_CODEBOOKS - 1))
    return generate_codes(lm, pattern, cond, null, SamplingParams(top_k=TOP_K, cfg_coef=CFG_COEF))


def hf_generate(hf: MusicgenForCausalLM, cond: Condition, steps: int) -> torch.Tensor:
    """``steps`` decoder steps of transformers' MusicGen decoder, with the same sampling settings."""
    return reference.hf_generate(hf, cond.embeds, cond.mask, steps, top_k=TOP_K, cfg_coef=CFG_COEF)


def synchronized(device: torch.device, codes: torch.Tensor) -> torch.Tensor:
    """``codes`` once the device has finished computing them (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return codes


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


def bench_size(name: str, steps: int, repeats: int, dtype: torch.dtype, device: torch.device
               ) -> tuple[dict[str, Timing], LMModel, Condition, Condition]:
    """Build both models of size ``name`` on ``device`` (tokenlm's in ``dtype``; transformers' in float32 and, when
    ``dtype`` is bf16, also a bf16 copy), warm them up, and time ``repeats`` generations of each. On CUDA, tokenlm
    runs as ``from_pretrained`` sets it up there: float32 weights under bf16 autocast."""
    hf = build_hf(SIZES[name])
    lm = lm_from_hf(hf)
    cond, null = conditions(lm.config.dim)
    reference.check_same_logits(lm, hf, cond.embeds)
    lm, hf = lm.to(device=device, dtype=dtype), hf.to(device)
    cond, null = cond.to(device), null.to(device)
    sides = {
        "tokenlm": (lm, lambda n: synchronized(device, tokenlm_generate(lm, cond, null, n))),
        "transformers": (hf.model.decoder, lambda n: synchronized(device, hf_generate(hf, cond, n))),
    }
    low = torch.bfloat16 if device.type == "cuda" else dtype
    if low != torch.float32:
        hf_low = copy.deepcopy(hf).to(low)
        cond_low = Condition(cond.embeds.to(low), cond.mask)
        sides["transformers_same_dtype"] = (hf_low.model.decoder,
                                            lambda n: synchronized(device, hf_generate(hf_low, cond_low, n)))
    warm_up(sides)
    runs = {side: functools.partial(run, steps) for side, (_, run) in sides.items()}
    return time_interleaved(runs, repeats, lambda side, codes: check_output(side, codes, steps)), lm, cond, null


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
    """Self-attention keys and values of ``steps`` steps for ``batch`` rows (float32 on CPU whatever the weights:
    ``tokenlm.common.device.kv_cache_dtype``)."""
    return 2 * lm.config.num_layers * batch * steps * lm.config.dim * 4


def weight_bytes(lm: LMModel) -> int:
    """Bytes of all of the LM's parameters."""
    return sum(p.numel() * p.element_size() for p in lm.parameters())


# ---------------------------------------------------------------------------------------------- memory


def memory_probe(steps: int, dtype: torch.dtype = torch.float32) -> dict[str, float | bool]:
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
    baseline_kb = proc_status_kb("VmRSS")
    reset = reset_peak_rss()
    torch.manual_seed(0)
    lm = LMModel(LMConfig(dim=size.dim, num_layers=size.layers, num_heads=size.heads, ffn_dim=size.ffn)).eval()
    lm = lm.to(dtype)  # built in float32 then cast, as from_pretrained does
    cond, null = conditions(size.dim)
    built_kb, build_peak_kb = proc_status_kb("VmRSS"), proc_status_kb("VmHWM")
    reset_peak_rss()  # the generation's own peak, over the built model
    check_output("tokenlm", tokenlm_generate(lm, cond, null, steps), steps)
    peak_kb = max(proc_status_kb("VmHWM"), build_peak_kb)
    return {
        "baseline": baseline_kb * 1024,
        "built": (built_kb - baseline_kb) * 1024,
        "build_peak": (build_peak_kb - baseline_kb) * 1024,
        "generation_peak": (proc_status_kb("VmHWM") - baseline_kb) * 1024,
        "peak": (peak_kb - baseline_kb) * 1024,
        "weights": weight_bytes(lm),
        "kv_cache": kv_cache_bytes(lm, steps),
        "peak_reset": reset,
    }


def run_memory_probe(steps: int, threads: int, dtype: str) -> dict[str, float | bool]:
    """:func:`memory_probe` in a fresh interpreter, so nothing this process allocated is counted or reused."""
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-probe", f"--steps={steps}", f"--dtype={dtype}"]
    command.append(f"--threads={threads}")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="decoder steps per generation (default 500)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--sizes", default="tiny,small", help="comma-separated sizes: tiny, small")
    parser.add_argument("--repeats", type=int, default=3, help="timed generations per side (best one counts)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 steps, 1 repeat")
    parser.add_argument("--profile", action="store_true", help="profile one small-size tokenlm generation")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="tokenlm's dtype (default auto: what from_pretrained picks on this CPU)")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default) or cuda: on CUDA both sides run on the GPU, tokenlm under bf16 autocast "
                             "and transformers in float32 and in bf16; no CPU memory or bandwidth lines")
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
        print(json.dumps(memory_probe(args.steps, size_dtype(args.dtype, torch.device("cpu"), "small"))))
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    dtypes = {name: size_dtype(args.dtype, device, name) for name in args.sizes}
    print(
        f"batch 1 + CFG {CFG_COEF:g} (effective batch 2), top-k {TOP_K}, temperature 1, {args.steps} steps, "
        f"{NUM_CODEBOOKS} x {CARDINALITY} codes, {CONDITION_LENGTH}-token condition, {args.threads} threads, "
        f"best of {args.repeats}; torch {torch.__version__}, transformers {transformers.__version__}"
    )
    chosen = ", ".join(f"{name} {str(dtype).removeprefix('torch.')}" for name, dtype in dtypes.items())
    print(f"CPU: {reports.cpu_name()}; native bf16 (AVX-512 BF16 / AMX): {'yes' if cpu_has_native_bf16() else 'no'}; "
          f"tokenlm dtype (--dtype {args.dtype}): {chosen}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}; tokenlm under bf16 autocast")
    warn_if_busy("before the run")
    reports.print_speed_header()
    for name in args.sizes:
        timings, lm, cond, null = bench_size(name, args.steps, args.repeats, dtypes[name], device)
        steps_per_s = reports.print_speed(name, timings, args.steps, SPEED_TARGETS[name])
        if "transformers_same_dtype" in timings:
            same = {"tokenlm": timings["tokenlm"], "transformers": timings["transformers_same_dtype"]}
            reports.print_speed(f"{name} vs transformers in bfloat16", same, args.steps, SAME_DTYPE_TARGET,
                                label_only=True)
        if name == "small" and device.type == "cpu":
            reports.print_floor(weight_bytes_per_step(lm), kv_cache_bytes(lm, args.steps), steps_per_s)
            reports.print_memory(run_memory_probe(args.steps, args.threads, args.dtype), MEMORY_TARGET)
            if args.profile:
                print(profile(functools.partial(tokenlm_generate, lm, cond, null, args.steps), rows=20))


if __name__ == "__main__":
    main()

"""Latent diffusion vs token LM: sampling speed and memory on this machine, both measured in the same run.

Prints (1) denoising steps/s of a small DiT (dim 512, 8 layers) on 10 s of latents with classifier-free
guidance (a 2B batch per step), and (2) the wall time to generate 10 s of audio with the LM backend and
with the LDM backend at matched parameter counts (LM: 500 token steps; LDM: ``--steps`` DDIM steps),
each with its peak memory (max RSS over the process's baseline, measured in a fresh subprocess).

    .venv/bin/python benchmarks/ldm.py [--threads 2] [--steps 50] [--seconds 10] [--quick]

Both backends use the same tiny random EnCodec (16 kHz, 50 Hz frames, 32-dim latent, 4 x 128 codes) and
the same SentencePiece text conditioner, so the difference is the generative model alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from reports import cpu_name

from tokenlm.common.device import cpu_has_native_bf16, weight_dtype

SMALL = {"dim": 512, "layers": 8, "heads": 8}
QUICK = {"dim": 128, "layers": 2, "heads": 4}


def benchmark_captions() -> list[str]:
    """A fixed caption set for the benchmark's SentencePiece tokenizer (timing does not depend on the words)."""
    sources = ["a dog", "a cat", "a bird", "rain", "a car engine", "a bell", "a drum", "a piano", "wind", "a train"]
    actions = ["barks", "plays", "rings", "falls", "hums", "beeps", "roars", "ticks"]
    qualifiers = ["softly", "loudly", "twice", "in the distance", "with reverb", "slowly", "quickly", "at night"]
    return [f"{s} {a} {q}" for s in sources for a in actions for q in qualifiers]


def build(kind: str, size: dict[str, int], seconds: float) -> torch.nn.Module:
    """A random LM or LDM backend of ``size`` with a tiny codec and a SentencePiece text conditioner."""
    from conditioners.text.sentencepiece import SentencePieceConditioner, train_sentencepiece
    from tokenlm.codecs import EncodecCodec, tiny_encodec_config

    torch.manual_seed(0)
    codec = EncodecCodec.from_config(tiny_encodec_config(), seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        spm = train_sentencepiece(benchmark_captions(), tmp, vocab_size=48)  # what 640 captions support
        text = SentencePieceConditioner("description", size["dim"], spm, dim=64, num_layers=2, num_heads=4)
    if kind == "lm":
        from tokenlm.lm.backend import LMBackend
        from tokenlm.lm.model import LMConfig, LMModel

        lm = LMModel(LMConfig(num_codebooks=codec.num_codebooks, cardinality=codec.cardinality, dim=size["dim"],
                              num_layers=size["layers"], num_heads=size["heads"], ffn_dim=4 * size["dim"]))
        return LMBackend(lm, codec, [text], max_duration=seconds).eval()
    from tokenlm.ldm.backend import LDMBackend
    from tokenlm.ldm.dit import DiT, DiTConfig

    dit = DiT(DiTConfig(latent_dim=codec.latent_dim, dim=size["dim"], num_layers=size["layers"],
                        num_heads=size["heads"], cond_dim=size["dim"]))
    return LDMBackend(dit, codec, [text], max_duration=seconds).eval()


def vm_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(kind: str, size: dict[str, int], seconds: float, steps: int, threads: int, dtype: str = "auto",
            scheduler: str = "dpmpp") -> dict[str, float]:
    """Time one generation of ``seconds`` (after a short warm-up) in this process; peak memory over baseline.

    Both backends run in ``dtype`` (``auto``: what ``TextToAudio.from_pretrained`` picks on this machine)."""
    from tokenlm.api import TextToAudio

    torch.set_num_threads(threads)
    backend = build(kind, size, seconds).set_dtype(dtype)
    model = TextToAudio(backend)
    args = {"steps": steps, "scheduler": scheduler} if kind == "ldm" else {}
    model.generate("a dog barks", 0.5, seed=0, **({"steps": 2} if kind == "ldm" else {}))  # warm-up
    with open("/proc/self/clear_refs", "w") as refs:  # reset the high-water mark to the current RSS
        refs.write("5")
    baseline = vm_kib("VmRSS")
    start = time.perf_counter()
    model.generate("a dog barks twice", seconds, seed=0, **args)
    wall = time.perf_counter() - start
    params = sum(p.numel() for p in (backend.lm if kind == "lm" else backend.dit).parameters())
    units = steps if kind == "ldm" else backend.frames_for(seconds) + backend.lm.config.num_codebooks - 1
    return {"wall_s": wall, "params_m": params / 1e6, "units": units, "units_per_s": units / wall,
            "peak_mb": (vm_kib("VmHWM") - baseline) / 1024}


def run_child(kind: str, size: str, seconds: float, steps: int, threads: int, dtype: str, scheduler: str
              ) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--size", size, "--seconds", str(seconds),
         "--steps", str(steps), "--threads", str(threads), "--dtype", dtype, "--scheduler", scheduler],
        check=False, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} measurement failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20,
                        help="diffusion sampling steps (default 20: what the default LDM samples with)")
    parser.add_argument("--scheduler", default="dpmpp", choices=["dpmpp", "ddim"],
                        help="diffusion sampler (default dpmpp: DPM-Solver++, what the default LDM uses)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="both backends' dtype (default auto: what from_pretrained picks on this CPU)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of audio to generate")
    parser.add_argument("--quick", action="store_true", help="a small model and 2 s: a smoke run in seconds")
    parser.add_argument("--size", default="small", choices=["small", "quick"], help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["lm", "ldm"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size = SMALL if args.size == "small" else QUICK
        print(json.dumps(measure(args.child, size, args.seconds, args.steps, args.threads, args.dtype,
                                 args.scheduler)))
        return
    size, seconds = ("quick", 2.0) if args.quick else ("small", args.seconds)
    load = os.getloadavg()[0]
    print(f"{seconds:g} s of audio, CFG on both sides, {args.threads} threads, torch {torch.__version__}; "
          f"load average {load:.2f}" + (" (busy machine: timings are noisy)" if load > 0.5 else ""))
    print(f"CPU: {cpu_name()}; native bf16: {'yes' if cpu_has_native_bf16() else 'no'}; dtype {args.dtype} -> "
          f"{str(weight_dtype(args.dtype, torch.device('cpu'))).removeprefix('torch.')}; LDM sampler {args.scheduler}, "
          f"{args.steps} steps")
    results = {kind: run_child(kind, size, seconds, args.steps, args.threads, args.dtype, args.scheduler)
               for kind in ("lm", "ldm")}
    lm, ldm = results["lm"], results["ldm"]
    print(f"{'backend':8} {'params':>9} {'work':>18} {'rate':>14} {'wall':>9} {'peak mem':>10}")
    print(f"{'LM':8} {lm['params_m']:8.1f}M {lm['units']:>12} steps {lm['units_per_s']:9.1f} st/s "
          f"{lm['wall_s']:8.2f}s {lm['peak_mb']:8.1f}MB")
    print(f"{'LDM':8} {ldm['params_m']:8.1f}M {ldm['units']:>10} denoise {ldm['units_per_s']:9.2f} st/s "
          f"{ldm['wall_s']:8.2f}s {ldm['peak_mb']:8.1f}MB")
    print(f"LDM / LM wall time: {ldm['wall_s'] / lm['wall_s']:.2f}x")


if __name__ == "__main__":
    main()

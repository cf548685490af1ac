"""Timing and memory probes shared by the speed benchmarks: counting decoder calls, timing sides in alternation,
timing training steps phase by phase, peak resident memory, copy bandwidth, and how busy the machine is.

Nothing here knows tokenlm or transformers: a side is a callable, a model is a ``torch.nn.Module``.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import record_function

# ---------------------------------------------------------------------------------------------- generation


@dataclass
class Timing:
    """Wall-clock seconds of the repeated generations of one side."""

    seconds: list[float]

    def steps_per_s(self, steps: int, best: bool = True) -> float:
        """Steps per second of the fastest run (``best``) or of the median run."""
        return steps / (min(self.seconds) if best else statistics.median(self.seconds))


def count_forwards(module: torch.nn.Module, run: Callable[[], object]) -> int:
    """How many decoder steps ``module`` runs during ``run()``: forward calls, plus single-step ``decode_step``
    calls where the module has them (tokenlm's lean path after the prefill)."""
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


def time_interleaved(runs: dict[str, Callable[[], torch.Tensor]], repeats: int,
                     check: Callable[[str, torch.Tensor], None]) -> dict[str, Timing]:
    """Time ``repeats`` runs of each side, alternating sides so slow phases of a busy machine hit both; every
    output goes through ``check(name, output)`` (outside the timed span)."""
    timings = {name: Timing([]) for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()
            start = time.perf_counter()
            output = run()
            timings[name].seconds.append(time.perf_counter() - start)
            check(name, output)
    return timings


# ---------------------------------------------------------------------------------------------- training steps

PHASES = ("forward", "backward", "optimizer")


@dataclass
class StepTimes:
    """Per-step wall-clock seconds of one side: the whole step and its phases, plus the loss of each step."""

    total: list[float]
    phases: dict[str, list[float]]
    losses: list[float]
    cpu: list[float]  # CPU seconds of this process per step (all threads)

    @classmethod
    def empty(cls) -> StepTimes:
        return cls([], {phase: [] for phase in PHASES}, [], [])

    def median_ms(self, phase: str | None = None) -> float:
        return 1e3 * statistics.median(self.total if phase is None else self.phases[phase])

    def min_ms(self) -> float:
        return 1e3 * min(self.total)

    def cpu_ms(self) -> float:
        return 1e3 * statistics.median(self.cpu)


@dataclass
class Side:
    """One benchmarked training setup: a model, its optimiser, its forward (a batch -> the scalar loss), and the
    times measured so far."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    forward: Callable[[object], torch.Tensor]
    times: StepTimes

    def step(self, batch: object, record: bool) -> float:
        """One training step; returns the loss. ``record`` appends the step's times to :attr:`times`."""
        cpu_start, start = time.process_time(), time.perf_counter()
        with record_function("train_step.forward"):
            loss = self.forward(batch)
        forward_end = time.perf_counter()
        with record_function("train_step.backward"):
            loss.backward()
        backward_end = time.perf_counter()
        with record_function("train_step.optimizer"):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        end, cpu_end = time.perf_counter(), time.process_time()
        value = float(loss.detach())
        if not torch.isfinite(torch.tensor(value)):
            raise RuntimeError(f"{self.name}: non-finite loss {value}")
        if record:
            self.times.total.append(end - start)
            phases = (forward_end - start, backward_end - forward_end, end - backward_end)
            for phase, seconds in zip(PHASES, phases, strict=True):
                self.times.phases[phase].append(seconds)
            self.times.losses.append(value)
            self.times.cpu.append(cpu_end - cpu_start)
        return value


def run_interleaved(sides: list[Side], batches: list[object], warmup: int, steps: int) -> None:
    """``warmup`` untimed then ``steps`` timed steps of every side, alternating sides step by step.

    Every side sees the same batches in the same order. The order of the sides is reversed every round, so neither
    always runs right after the other, and slow phases of a busy machine hit every side alike.
    """
    for index in range(warmup + steps):
        batch = batches[index % len(batches)]
        order = sides if index % 2 == 0 else sides[::-1]
        for side in order:
            gc.collect()
            side.step(batch, record=index >= warmup)


def loss_drift(a: StepTimes, b: StepTimes) -> float:
    """Largest relative difference of two sides' losses at the same step."""
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a.losses, b.losses, strict=True))


def profile(run: Callable[[], object], rows: int) -> str:
    """The operators taking most of ``run()``'s time (torch.profiler, CPU), as a table of ``rows`` rows."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


# ---------------------------------------------------------------------------------------------- memory


def proc_status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in kB (``VmRSS``, ``VmHWM``...)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current VmRSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- machine

#: size of the tensor copied to measure memory bandwidth
COPY_BYTES = 256 * 2**20


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


def last_level_cache_bytes() -> int | None:
    """Size of CPU 0's largest cache as Linux reports it (shared with other tenants on a VM), or None."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip()
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        sizes.append(int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
    return max(sizes, default=None)


def warn_if_busy(when: str) -> None:
    """Print a warning when other processes keep the CPUs busy (timings then mean little)."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5:
        print(f"WARNING: load average {load:.2f} on {cores} cores {when}: other work is running, timings are noisy")

"""Training-step speed of tokenlm's LM against transformers' MusicGen decoder (CPU).

One training step = build the delay-pattern sequence from codes ``[B, K, T]``, forward with cross-attention to a
padded condition, per-codebook cross-entropy over the valid positions, backward, AdamW step, ``zero_grad``. Both
sides run it on the same batches, in the same process and with the same threads:

- tokenlm: ``LMModel`` teacher-forced on ``build_pattern("delay", ...)``, ``codebook_cross_entropy``, AdamW from
  ``tokenlm.train.optim.build_optimizer``;
- transformers: ``MusicgenForCausalLM(labels=...)`` (the same delay-pattern sequence as labels: MusicGen shifts them
  right itself and ignores the special token), AdamW with the same settings and the same parameter groups.

The two models hold the very same weights (copied from the transformers one); before timing, the script checks
that both give the same loss and the same gradients, and while timing that their losses stay together, so the two
do identical arithmetic. Both are in train mode with dropout 0, no gradient checkpointing, float32.

Usage::

    .venv/bin/python benchmarks/train_step.py                 # small size, 10 timed steps per side, 2 threads
    .venv/bin/python benchmarks/train_step.py --quick         # tiny size, 3 steps: a smoke run of a few seconds
    .venv/bin/python benchmarks/train_step.py --rr            # also tokenlm's full lm_loss path, with / without RR
    .venv/bin/python benchmarks/train_step.py --profile       # also: where tokenlm's step time goes

See benchmarks/README.md for what every number means.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import musicgen_reference as reference
import torch
import transformers
from torch.profiler import record_function
from transformers import MusicgenForCausalLM

from conditioners.base import Condition, Conditioner
from conditioners.provider import ConditioningProvider
from tokenlm.lm.losses import codebook_cross_entropy
from tokenlm.lm.model import LMModel
from tokenlm.lm.objective import LMObjective, lm_loss
from tokenlm.lm.patterns import build_pattern
from tokenlm.train.optim import build_optimizer, parameter_groups

NUM_CODEBOOKS = 4
CARDINALITY = 2048
CONDITION_LENGTH = 16
LR = 1e-4
BETAS = (0.9, 0.95)
WEIGHT_DECAY = 0.1
#: distinct batches cycled through (the same sequence of batches for every side)
NUM_BATCHES = 2
#: transformers ms/step over tokenlm ms/step must reach this
SPEED_TARGET = 1.2
#: largest relative difference of the two sides' losses at the same step before it is flagged
LOSS_TOLERANCE = 1e-3
PHASES = ("forward", "backward", "optimizer")
#: names of the ``--rr`` sides: tokenlm's full ``lm_loss`` on a CFG batch, with and without RR
RR_ON, RR_OFF = "lm_loss CFG + RR", "lm_loss CFG, RR off"


@dataclass(frozen=True)
class Size:
    """Model and batch dimensions of one benchmark configuration."""

    dim: int
    layers: int
    heads: int
    ffn: int
    batch: int
    frames: int


SIZES = {
    "quick": Size(dim=64, layers=2, heads=4, ffn=256, batch=2, frames=50),
    "small": Size(dim=512, layers=8, heads=8, ffn=2048, batch=8, frames=250),
}


@dataclass
class Batch:
    """Codes ``[B, K, T]`` (all frames valid) and a padded condition ``[B, S, D]`` (mask ``[B, S]``)."""

    codes: torch.Tensor
    condition: Condition


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


# ---------------------------------------------------------------------------------------------- models


def build_hf(size: Size, seed: int = 0) -> MusicgenForCausalLM:
    """The reference decoder of ``size`` (train mode)."""
    return reference.build_hf(size.dim, size.layers, size.heads, size.ffn, NUM_CODEBOOKS, CARDINALITY, seed).train()


def lm_from_hf(hf: MusicgenForCausalLM) -> LMModel:
    """tokenlm's LM with the weights of ``hf`` (train mode)."""
    return reference.lm_from_hf(hf).train()


def hf_optimizer(hf: MusicgenForCausalLM, like: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimiser ``like`` (tokenlm's, from ``build_optimizer``) rebuilt over ``hf``: same class, same settings.

    ``parameter_groups`` spots tokenlm's ``embeddings`` by name; MusicGen's tables are ``embed_tokens.<k>.weight``,
    so they are moved to the no-decay group by hand, as tokenlm's own tables are. Every constructor setting of
    ``like`` (lr, betas, eps, foreach / fused...) is passed on, so a change to ``build_optimizer`` reaches both sides.
    """
    groups = parameter_groups(hf, like.param_groups[0]["weight_decay"])
    decay, no_decay = groups
    tables = {id(p) for p in hf.model.decoder.embed_tokens.parameters()}
    no_decay["params"] += [p for p in decay["params"] if id(p) in tables]
    decay["params"] = [p for p in decay["params"] if id(p) not in tables]
    if len(like.param_groups) != len(groups):
        raise RuntimeError(f"tokenlm's optimiser has {len(like.param_groups)} parameter groups, expected {len(groups)}")
    for group, ours in zip(groups, like.param_groups, strict=True):
        group["weight_decay"] = ours["weight_decay"]
    accepted = inspect.signature(type(like).__init__).parameters
    settings = {name: value for name, value in like.defaults.items() if name in accepted and name != "params"}
    return type(like)(groups, **settings)


def check_same_groups(ours: torch.optim.Optimizer, theirs: torch.optim.Optimizer) -> None:
    """Raise unless both optimisers are of one class and update the same number of weights with the same settings."""

    def summary(optimizer: torch.optim.Optimizer) -> list[tuple[int, dict[str, Any]]]:
        return [
            (sum(p.numel() for p in g["params"]), {k: v for k, v in g.items() if k != "params"})
            for g in optimizer.param_groups
        ]

    if type(ours) is not type(theirs) or summary(ours) != summary(theirs):
        raise RuntimeError(f"optimisers differ: tokenlm {summary(ours)} vs transformers {summary(theirs)}")


# ---------------------------------------------------------------------------------------------- data


def make_batches(size: Size, count: int, seed: int = 0) -> list[Batch]:
    """``count`` random batches: codes, and a 16-token condition with a different number of padded keys per row."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        codes = torch.randint(0, CARDINALITY, (size.batch, NUM_CODEBOOKS, size.frames), generator=generator)
        embeds = torch.randn(size.batch, CONDITION_LENGTH, size.dim, generator=generator)
        lengths = torch.randint(CONDITION_LENGTH // 4, CONDITION_LENGTH + 1, (size.batch,), generator=generator)
        lengths[0] = CONDITION_LENGTH // 2  # at least one padded row, so neither side can drop the mask
        mask = torch.arange(CONDITION_LENGTH)[None, :] < lengths[:, None]  # [B, S]
        batches.append(Batch(codes, Condition(embeds * mask[..., None], mask)))
    return batches


def delay_sequence(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes ``[B, K, T]`` -> delay-pattern sequence ``[B, K, S]`` and its validity ``[B, K, S]``."""
    batch, num_codebooks, frames = codes.shape
    pattern = build_pattern("delay", num_codebooks, frames)
    sequence = pattern.build(codes, CARDINALITY)
    valid = pattern.valid.to(codes.device)[None].expand(batch, -1, -1)
    return sequence, valid


# ---------------------------------------------------------------------------------------------- steps

#: one side's forward pass on a batch -> the scalar loss
Forward = Callable[[Batch], torch.Tensor]


def tokenlm_forward(lm: LMModel) -> Forward:
    """Teacher-forced cross-entropy of tokenlm's LM, as ``lm_loss`` computes it, without conditioners or RR."""

    def forward(batch: Batch) -> torch.Tensor:
        sequence, valid = delay_sequence(batch.codes)
        context = lm.cross_context(batch.condition.embeds, batch.condition.mask)
        logits = lm(sequence[..., :-1], context)  # [B, K, S - 1, card]
        loss, _ = codebook_cross_entropy(logits, sequence[..., 1:], valid[..., 1:])
        return loss

    return forward


def hf_forward(hf: MusicgenForCausalLM) -> Forward:
    """MusicGen's own training loss: ``labels`` = the delay-pattern sequence after its start step, ``[B, S - 1, K]``.

    MusicGen shifts the labels right behind a start token (= the special token, so its inputs are tokenlm's
    ``sequence[..., :-1]``) and ignores labels equal to the special token (= tokenlm's invalid positions).
    """

    def forward(batch: Batch) -> torch.Tensor:
        sequence, _ = delay_sequence(batch.codes)
        labels = sequence[..., 1:].transpose(1, 2)  # [B, S - 1, K]
        output = hf(
            labels=labels,
            encoder_hidden_states=batch.condition.embeds,
            encoder_attention_mask=batch.condition.mask.long(),
            use_cache=False,
        )
        return output.loss

    return forward


class BatchRows(Conditioner):
    """A conditioner serving fixed embeddings (a frozen text encoder's output): value ``i`` is row ``i`` of
    :attr:`rows`, the current batch's condition; ``None`` (a dropped value) is the null row (zeros, all masked)."""

    kind = "benchmark_rows"
    value_types = (int,)

    def __init__(self, attribute: str, output_dim: int) -> None:
        super().__init__(attribute, output_dim)
        self.rows: Condition | None = None

    def prepare(self, values: list[Any]) -> list[int | None]:
        return list(values)

    def forward(self, inputs: list[int | None]) -> Condition:
        if self.rows is None:
            raise RuntimeError("set BatchRows.rows to the batch's condition first")
        index = torch.tensor([0 if i is None else i for i in inputs])
        keep = torch.tensor([i is not None for i in inputs])
        embeds = self.rows.embeds[index] * keep[:, None, None]
        return Condition(embeds, self.rows.mask[index] & keep[:, None])

    def config(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "output_dim": self.output_dim}


class BenchmarkBackend:
    """What ``lm_loss`` reads of an ``LMBackend``: the LM, a real conditioning provider, the pattern."""

    def __init__(self, lm: LMModel) -> None:
        self.rows = BatchRows("description", lm.config.dim)
        self.lm, self.conditioning = lm, ConditioningProvider([self.rows])
        self.pattern_kind, self.delays = "delay", None


def lm_loss_forward(lm: LMModel, objective: LMObjective) -> Forward:
    """tokenlm's full ``lm_loss`` on a CFG batch (every sample condition-dropped, as ``per_sample_cfg`` off does)."""
    backend = BenchmarkBackend(lm)

    def forward(batch: Batch) -> torch.Tensor:
        size = batch.codes.shape[0]
        backend.rows.rows = batch.condition
        frame_mask = torch.ones(size, batch.codes.shape[2], dtype=torch.bool)
        attributes = [{"description": i} for i in range(size)]
        dropped = torch.ones(size, dtype=torch.bool)
        losses = lm_loss(backend, batch.codes, frame_mask, attributes, dropped, objective)
        if ("rr" in losses) != (objective.rr_mode != "off"):
            raise RuntimeError(f"lm_loss computed RR: {'rr' in losses}, with rr_mode {objective.rr_mode!r}")
        return losses["loss"]

    return forward


@dataclass
class Side:
    """One benchmarked training setup: a model, its optimiser, its forward, and the times measured so far."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    forward: Forward
    times: StepTimes

    def step(self, batch: Batch, record: bool) -> float:
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


# ---------------------------------------------------------------------------------------------- checks


def check_same_gradients(lm: LMModel, hf: MusicgenForCausalLM, batch: Batch) -> float:
    """Raise unless one forward/backward of each side gives the same loss and gradients; returns the loss."""
    ours = tokenlm_forward(lm)(batch)
    theirs = hf_forward(hf)(batch)
    ours.backward()
    theirs.backward()
    if not torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6):
        raise RuntimeError(f"losses differ: tokenlm {ours.item():.6f}, transformers {theirs.item():.6f}")
    decoder, last = hf.model.decoder, len(lm.blocks) - 1
    pairs = {
        "embeddings": (lm.embeddings.grad, torch.stack([e.weight.grad for e in decoder.embed_tokens])),
        "heads": (lm.heads.grad, torch.stack([h.weight.grad for h in hf.lm_heads])),
        "blocks.0.self_attn.qkv": (
            lm.blocks[0].self_attn.qkv.weight.grad,
            torch.cat([getattr(decoder.layers[0].self_attn, p).weight.grad for p in ("q_proj", "k_proj", "v_proj")]),
        ),
        "blocks.0.cross_attn.kv": (
            lm.blocks[0].cross_attn.kv.weight.grad,
            torch.cat([getattr(decoder.layers[0].encoder_attn, p).weight.grad for p in ("k_proj", "v_proj")]),
        ),
        f"blocks.{last}.fc1": (lm.blocks[last].fc1.weight.grad, decoder.layers[last].fc1.weight.grad),
    }
    for name, (a, b) in pairs.items():
        scale = b.abs().max().item()
        if a is None or not torch.allclose(a, b, rtol=1e-3, atol=1e-3 * scale):
            error = float("nan") if a is None else (a - b).abs().max().item()
            raise RuntimeError(f"gradients of {name} differ by up to {error:.2e} (scale {scale:.2e})")
    lm.zero_grad(set_to_none=True)
    hf.zero_grad(set_to_none=True)
    return ours.item()


def check_training_setup(name: str, model: torch.nn.Module) -> None:
    """Raise unless every module is in train mode with no dropout of any kind and no gradient checkpointing."""
    problems = [f"{n or 'model'} in eval mode" for n, m in model.named_modules() if not m.training]
    problems += [f"{n} has p={m.p}" for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    rates = ("dropout", "attention_dropout", "activation_dropout", "layerdrop")
    config = getattr(model, "config", None)
    problems += [f"config.{r}={getattr(config, r)}" for r in rates if getattr(config, r, 0) not in (0, 0.0)]
    problems += [
        f"{n} checkpoints activations" for n, m in model.named_modules() if getattr(m, "gradient_checkpointing", 0)
    ]
    if problems:
        raise RuntimeError(f"{name} is not set up like the other side: {'; '.join(problems[:5])}")


def loss_drift(a: StepTimes, b: StepTimes) -> float:
    """Largest relative difference of two sides' losses at the same step."""
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a.losses, b.losses, strict=True))


# ---------------------------------------------------------------------------------------------- timing


def run_interleaved(sides: list[Side], batches: list[Batch], warmup: int, steps: int) -> None:
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


def profile_side(side: Side, batches: list[Batch], steps: int, rows: int) -> None:
    """Print the operators taking most of ``side``'s training-step time over ``steps`` steps (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for index in range(steps):
            side.step(batches[index % len(batches)], record=False)
    print(f"\n{side.name}: top operators over {steps} steps (self CPU time)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


# ---------------------------------------------------------------------------------------------- report


def print_report(sides: list[Side], steps: int, smoke: bool) -> None:
    """Per-side step times, the headline ratio, and the check that both sides kept doing the same arithmetic."""
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
    verdict = "ok" if ratio >= SPEED_TARGET else "MISSED"
    if smoke:
        verdict = "(the target is for the small size; --quick only checks that the benchmark runs)"
    print(
        f"\nratio transformers / tokenlm: {ratio:.2f}x (median ms / median ms)   target >= {SPEED_TARGET}x {verdict}\n"
        f"  (median of per-round ratios {paired:.2f}x; fastest / fastest step {theirs.min_ms() / ours.min_ms():.2f}x; "
        f"CPU ms / CPU ms {theirs.cpu_ms() / ours.cpu_ms():.2f}x)"
    )
    drift = loss_drift(ours, theirs)
    flag = "ok" if drift <= LOSS_TOLERANCE else "DIVERGED: the two sides no longer do the same arithmetic"
    print(
        f"same arithmetic: losses of the {steps} timed steps differ by up to {drift:.1e} (relative) {flag}; "
        f"loss {ours.losses[0]:.4f} -> {ours.losses[-1]:.4f}"
    )
    named = {side.name: side.times for side in sides}
    if RR_ON in named and RR_OFF in named:
        with_rr, without = named[RR_ON].median_ms(), named[RR_OFF].median_ms()
        paired = statistics.median(a - b for a, b in zip(named[RR_ON].total, named[RR_OFF].total, strict=True))
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="timed training steps per side (default 10; 3 with --quick)")
    parser.add_argument("--warmup", type=int, help="untimed steps per side first (default 2; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny model, batch 2 x 50 frames, 3 steps")
    parser.add_argument("--rr", action="store_true", help="also time tokenlm's lm_loss on a CFG batch, RR on / off")
    parser.add_argument("--profile", action="store_true", help="profile tokenlm's (and transformers') steps")
    parser.add_argument("--profile-steps", type=int, default=3, help="steps per profiled side (default 3)")
    parser.add_argument("--rows", type=int, default=25, help="operators listed per profile (default 25)")
    args = parser.parse_args(argv)
    args.size = "quick" if args.quick else "small"
    if args.steps is None:
        args.steps = 3 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.steps < 1 or args.warmup < 0 or args.threads < 1 or args.profile_steps < 1:
        parser.error("need --steps >= 1, --warmup >= 0, --threads >= 1, --profile-steps >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]  # before this process adds its own load
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    size = SIZES[args.size]
    steps = size.frames + NUM_CODEBOOKS  # delay pattern: S = T + max delay + 1 steps; the LM sees S - 1
    print(
        f"{args.size}: dim {size.dim}, {size.layers} layers, {size.heads} heads, ffn {size.ffn}; batch {size.batch} x "
        f"{size.frames} frames = {steps - 1} LM positions (delay pattern), {NUM_CODEBOOKS} x {CARDINALITY} codes, "
        f"{CONDITION_LENGTH}-token padded condition; float32, {args.threads} threads, {args.warmup} warm-up + "
        f"{args.steps} timed steps per side; torch {torch.__version__}, transformers {transformers.__version__}"
    )
    hf = build_hf(size)
    lm = lm_from_hf(hf)
    batches = make_batches(size, NUM_BATCHES)
    check_training_setup("tokenlm", lm)
    check_training_setup("transformers", hf)
    loss = check_same_gradients(lm, hf, batches[0])
    print(f"checked: same loss ({loss:.4f}) and gradients from both sides on one batch")
    lm_optimizer = build_optimizer(lm, LR, BETAS, WEIGHT_DECAY)
    hf_opt = hf_optimizer(hf, lm_optimizer)
    check_same_groups(lm_optimizer, hf_opt)
    shown = ("lr", "betas", "eps", "foreach", "fused")
    settings = ", ".join(f"{k} {v}" for k, v in lm_optimizer.defaults.items() if k in shown)
    print(f"optimiser (both sides): {type(lm_optimizer).__name__} {settings}, weight decay {WEIGHT_DECAY} on matrices")
    sides = [
        Side("tokenlm", lm, lm_optimizer, tokenlm_forward(lm), StepTimes.empty()),
        Side("transformers", hf, hf_opt, hf_forward(hf), StepTimes.empty()),
    ]
    if args.rr:
        for name, mode in ((RR_ON, "cfg"), (RR_OFF, "off")):
            variant = lm_from_hf(hf)
            check_training_setup(name, variant)
            objective = LMObjective(rr_weight=3.0, rr_pooling="max", rr_mode=mode)
            optimizer = build_optimizer(variant, LR, BETAS, WEIGHT_DECAY)
            sides.append(Side(name, variant, optimizer, lm_loss_forward(variant, objective), StepTimes.empty()))
    run_interleaved(sides, batches, args.warmup, args.steps)
    utilisation = sum(sum(side.times.cpu) for side in sides) / sum(sum(side.times.total) for side in sides)
    print_report(sides, args.steps, smoke=args.quick)
    print_load(load_before, os.getloadavg()[0], utilisation, args.threads)
    if args.profile:
        for side in sides[:2]:
            profile_side(side, batches, args.profile_steps, args.rows)


if __name__ == "__main__":
    main()

"""Training-step speed of tokenlm's LM against transformers' MusicGen decoder (CPU).

One training step = build the delay-pattern sequence from codes ``[B, K, T]``, forward with cross-attention to a
padded condition, per-codebook cross-entropy over the valid positions, backward, AdamW step, ``zero_grad``. Both
sides run it on the same batches, in the same process and with the same threads:

- tokenlm: ``LMModel`` teacher-forced on ``build_pattern("delay", ...)``, ``LMModel.cross_entropy``, AdamW from
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

The transformers side lives in ``musicgen_reference.py``, the step timing in ``probes.py``, the printed tables in
``reports.py``. See benchmarks/README.md for what every number means.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import musicgen_reference as reference
import reports
import torch
import transformers
from probes import Side, StepTimes, profile, run_interleaved
from transformers import MusicgenForCausalLM

from conditioners.base import Condition, Conditioner
from conditioners.provider import ConditioningProvider
from tokenlm.lm.model import LMModel
from tokenlm.lm.objective import LMObjective, lm_loss
from tokenlm.lm.patterns import build_pattern
from tokenlm.train.optim import build_optimizer

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


# ---------------------------------------------------------------------------------------------- forwards

#: one side's forward pass on a batch -> the scalar loss
Forward = Callable[[Batch], torch.Tensor]


def tokenlm_forward(lm: LMModel) -> Forward:
    """Teacher-forced cross-entropy of tokenlm's LM, as ``lm_loss`` computes it, without conditioners or RR."""

    def forward(batch: Batch) -> torch.Tensor:
        sequence, valid = delay_sequence(batch.codes)
        context = lm.cross_context(batch.condition.embeds, batch.condition.mask)
        hidden = lm.hidden_states(sequence[..., :-1], context)  # [B, S - 1, D]
        loss, _ = lm.cross_entropy(hidden, sequence[..., 1:], valid[..., 1:])  # heads + per-codebook CE
        return loss

    return forward


def hf_forward(hf: MusicgenForCausalLM) -> Forward:
    """MusicGen's own training loss on the same delay-pattern sequence (see ``reference.hf_loss``)."""

    def forward(batch: Batch) -> torch.Tensor:
        sequence, _ = delay_sequence(batch.codes)
        return reference.hf_loss(hf, sequence, batch.condition.embeds, batch.condition.mask)

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


# ---------------------------------------------------------------------------------------------- checks


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


# ---------------------------------------------------------------------------------------------- main


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


def build_sides(hf: MusicgenForCausalLM, lm: LMModel, rr: bool) -> list[Side]:
    """tokenlm and transformers with the same optimiser settings (checked), plus the ``--rr`` variants."""
    lm_optimizer = build_optimizer(lm, LR, BETAS, WEIGHT_DECAY)
    hf_opt = reference.hf_optimizer(hf, lm_optimizer)
    reference.check_same_groups(lm_optimizer, hf_opt)
    shown = ("lr", "betas", "eps", "foreach", "fused")
    settings = ", ".join(f"{k} {v}" for k, v in lm_optimizer.defaults.items() if k in shown)
    print(f"optimiser (both sides): {type(lm_optimizer).__name__} {settings}, weight decay {WEIGHT_DECAY} on matrices")
    sides = [
        Side("tokenlm", lm, lm_optimizer, tokenlm_forward(lm), StepTimes.empty()),
        Side("transformers", hf, hf_opt, hf_forward(hf), StepTimes.empty()),
    ]
    if rr:
        for name, mode in ((RR_ON, "cfg"), (RR_OFF, "off")):
            variant = reference.lm_from_hf(hf).train()
            check_training_setup(name, variant)
            objective = LMObjective(rr_weight=3.0, rr_pooling="max", rr_mode=mode)
            optimizer = build_optimizer(variant, LR, BETAS, WEIGHT_DECAY)
            sides.append(Side(name, variant, optimizer, lm_loss_forward(variant, objective), StepTimes.empty()))
    return sides


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
    hf = reference.build_hf(size.dim, size.layers, size.heads, size.ffn, NUM_CODEBOOKS, CARDINALITY).train()
    lm = reference.lm_from_hf(hf).train()
    batches = make_batches(size, NUM_BATCHES)
    check_training_setup("tokenlm", lm)
    check_training_setup("transformers", hf)
    loss = reference.check_same_gradients(lm, hf, tokenlm_forward(lm)(batches[0]), hf_forward(hf)(batches[0]))
    print(f"checked: same loss ({loss:.4f}) and gradients from both sides on one batch")
    sides = build_sides(hf, lm, args.rr)
    run_interleaved(sides, batches, args.warmup, args.steps)
    utilisation = sum(sum(side.times.cpu) for side in sides) / sum(sum(side.times.total) for side in sides)
    reports.print_step_report(sides, args.steps, target=SPEED_TARGET, loss_tolerance=LOSS_TOLERANCE,
                              smoke=args.quick, rr_pair=(RR_ON, RR_OFF))
    reports.print_load(load_before, os.getloadavg()[0], utilisation, args.threads)
    if args.profile:
        for side in sides[:2]:
            run = functools.partial(run_interleaved, [side], batches, args.profile_steps, 0)
            print(f"\n{side.name}: top operators over {args.profile_steps} steps (self CPU time)")
            print(profile(run, args.rows))


if __name__ == "__main__":
    main()

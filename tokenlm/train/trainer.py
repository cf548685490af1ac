"""The trainer: one loop for single-process and torchrun (DDP / FSDP) runs, resumable to the step."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from conditioners.dropout import ConditionDropout, DropoutDraw
from tokenlm.common.device import autocast
from tokenlm.common.progress import progress_bar
from tokenlm.lm.backend import LMBackend
from tokenlm.lm.objective import LMObjective, lm_loss
from tokenlm.train import distributed as D
from tokenlm.train.data import TrainData
from tokenlm.train.optim import EMA, build_optimizer, build_scheduler
from tokenlm.train.state import (
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    read_metrics,
    restore_rng,
    save_checkpoint,
)

log = logging.getLogger(__name__)

#: test hook: ``"STEP:SIGNAL"`` (e.g. ``"9:SIGKILL"``) makes a single-process run send itself SIGNAL once step STEP
#: is logged, so tests interrupt training at an exact step on any machine instead of racing a timer
SIGNAL_AFTER_STEP_ENV = "TOKENLM_SIGNAL_AFTER_STEP"


class LMTrainModule(nn.Module):
    """What the optimiser trains (LM + conditioners) and how a batch becomes losses."""

    def __init__(self, backend: LMBackend, objective: LMObjective, gather_rr: bool) -> None:
        super().__init__()
        self.lm, self.conditioning = backend.lm, backend.conditioning
        self.backend, self.objective = [backend], objective  # list: not a registered submodule
        self.gather = D.gather_with_grad if gather_rr else None

    def forward(
        self,
        codes: torch.Tensor,
        frame_mask: torch.Tensor,
        attributes: list[dict],
        dropped: torch.Tensor,
        attribute_dropped: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        return lm_loss(
            self.backend[0], codes, frame_mask, attributes, dropped, self.objective, self.gather, attribute_dropped
        )


class BackendTrainModule(nn.Module):
    """The training hook of backends that compute their own loss (``backend.compute_loss``), e.g. diffusion:
    registers what the backend trains (``backend.trainable_modules()``) and forwards batches to it."""

    def __init__(self, backend: nn.Module) -> None:
        super().__init__()
        self.parts = backend.trainable_modules()
        self.backend = [backend]  # list: not a registered submodule

    def forward(
        self,
        inputs: torch.Tensor,
        frame_mask: torch.Tensor,
        attributes: list[dict],
        dropped: torch.Tensor,
        attribute_dropped: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        return self.backend[0].compute_loss(inputs, frame_mask, attributes, dropped, attribute_dropped)


def train_module(cfg: dict[str, Any], backend: nn.Module) -> nn.Module:
    """The module the optimiser trains: the backend's own loss hook when it has one, else the LM objective."""
    if hasattr(backend, "compute_loss"):
        return BackendTrainModule(backend)
    rr = cfg["solver"]["rr"]
    objective = LMObjective(float(rr["weight"]), rr["pooling"], rr["mode"] if rr["enabled"] else "off")
    return LMTrainModule(backend, objective, gather_rr=bool(rr.get("gather", True)))


class Trainer:
    """Trains the backend a recipe describes (LM or diffusion). ``cfg`` is the resolved recipe as a plain dict."""

    def __init__(self, cfg: dict[str, Any], backend: nn.Module, data: TrainData, info: D.DistInfo) -> None:
        self.cfg, self.backend, self.data, self.info = cfg, backend, data, info
        solver = cfg["solver"]
        self.device = backend.device
        self.run_dir = Path(cfg["run_dir"])
        self.module = train_module(cfg, backend)
        self.model = self._wrap(self.module)
        self.optimizer = build_optimizer(
            self.module, float(solver["lr"]), tuple(solver["betas"]), float(solver["weight_decay"])
        )
        self.total_steps = int(solver["steps"])
        self.scheduler = build_scheduler(
            self.optimizer, int(solver["warmup_steps"]), self.total_steps, float(solver.get("min_lr_ratio", 0.0))
        )
        self.ema = EMA(self.module, float(solver["ema_decay"]))
        self.dropout = condition_dropout(cfg)
        self.dropout.check_attributes(backend.attributes)
        self.cfg_generator = torch.Generator().manual_seed(int(cfg["seed"]) + 1)
        self.step = 0
        self.nonfinite_in_a_row = 0
        self.skipped_steps = 0
        self.stop_requested = False

    # ----------------------------------------------------------------- setup
    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.info.enabled:
            return module
        strategy = self.cfg.get("distributed", {}).get("strategy", "ddp")
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        if strategy == "fsdp":
            from torch.distributed.fsdp import FullyShardedDataParallel

            return FullyShardedDataParallel(module, device_id=self.device if self.device.type == "cuda" else None)
        if strategy != "ddp":
            raise ValueError(f"distributed.strategy must be 'ddp' or 'fsdp', got {strategy!r}")
        # conditioners can sit out a step (a CFG-dropped batch, a dropped attribute): their parameters then get
        # no gradient, which DDP must be told to expect
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)

    def _rng_generators(self) -> dict[str, torch.Generator]:
        return {"cfg": self.cfg_generator}

    def resume_if_asked(self) -> None:
        """Continue from the newest checkpoint of ``run_dir`` when ``resume`` is true."""
        if not self.cfg.get("resume"):
            return
        folder = latest_checkpoint(self.run_dir)
        if folder is None:
            log.info("resume=true but %s has no checkpoint yet: starting from step 0", self.run_dir)
            return
        ema_state, state = load_checkpoint(folder, self.module)
        self.ema.load_state_dict(ema_state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], self._rng_generators())
        self.step = int(state["step"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self._truncate_metrics(self.step)
        log.info("resumed from %s at step %d", folder, self.step)

    def _truncate_metrics(self, step: int) -> None:
        path = self.run_dir / "metrics.jsonl"
        if not self.info.is_main or not path.is_file():
            return
        # a run killed mid-write may have left a torn last line: read_metrics drops it, and rewriting the kept
        # records leaves a file that ends with a newline again
        kept = [record for record in read_metrics(path) if record["step"] <= step]
        path.write_text("".join(json.dumps(record) + "\n" for record in kept))

    # ----------------------------------------------------------------- one step
    def _dropped(self, batch_size: int) -> DropoutDraw:
        """CFG and attribute dropout for this micro-batch, drawn identically on every rank from the shared
        generator (saved in checkpoints, so a resumed run drops exactly what it would have)."""
        return self.dropout.draw(batch_size, self.cfg_generator, world_size=self.info.world_size, rank=self.info.rank)

    def train_step(self) -> dict[str, float]:
        solver = self.cfg["solver"]
        accumulation = int(solver.get("accumulation", 1))
        totals: dict[str, torch.Tensor] = {}
        finite = True
        start, audio_seconds = time.perf_counter(), 0.0
        for micro in range(accumulation):
            batch = self.data.train_batch(self.step * accumulation + micro)
            if "wav" in batch:  # [B, C, N] audio at the model's rate (a token cache holds codes instead)
                audio_seconds += batch["wav"].shape[0] * batch["wav"].shape[-1] / self.data.sample_rate
            codes, frame_mask = self.data.inputs(batch, self.backend, self.device)  # codes or latents
            draw = self._dropped(codes.shape[0])
            dropped = draw.dropped
            sync = micro == accumulation - 1 or not self.info.enabled
            context = self.model.no_sync() if not sync and hasattr(self.model, "no_sync") else nullcontext()
            with context:
                with autocast(self.device, cpu=bool(solver.get("cpu_bf16", False))):
                    losses = self.model(
                        codes, frame_mask, batch["attributes"], dropped.to(self.device), draw.attributes
                    )
                bad = (~torch.isfinite(losses["loss"].detach())).float()
                finite = bool(D.all_reduce_max(bad, self.info) == 0)
                if finite:
                    (losses["loss"] / accumulation).backward()
            if not finite:
                break
            for name, value in losses.items():
                totals[name] = totals.get(name, 0) + value.detach().float() / accumulation
            totals["cfg"] = totals.get("cfg", 0) + dropped.float().mean() / accumulation
            for name, mask in draw.attributes.items():  # per-attribute dropout rates, for the logs
                totals[f"drop_{name}"] = totals.get(f"drop_{name}", 0) + mask.float().mean() / accumulation
        if not finite:
            return self._skip_step()
        self.nonfinite_in_a_row = 0
        grad_norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), float(solver["grad_clip"]))
        lr = self.scheduler.get_last_lr()[0]  # the learning rate this step applies
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.module)
        metrics = {name: float(D.all_reduce_mean(value.to(self.device), self.info)) for name, value in totals.items()}
        metrics["grad_norm"] = float(grad_norm)
        metrics["lr"] = lr
        if audio_seconds:  # throughput of this process, in seconds of training audio per second
            metrics["audio_seconds_per_s"] = audio_seconds / (time.perf_counter() - start)
        return metrics

    def _skip_step(self) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_in_a_row += 1
        self.skipped_steps += 1
        limit = int(self.cfg["solver"].get("max_nonfinite", 5))
        log.warning("non-finite loss at step %d: step skipped (%d in a row)", self.step, self.nonfinite_in_a_row)
        if self.nonfinite_in_a_row >= limit:
            raise RuntimeError(
                f"the loss was NaN/inf for {limit} steps in a row (last at step {self.step}); lower the learning "
                "rate or check the data"
            )
        return {"skipped": 1.0}

    # ----------------------------------------------------------------- loop
    def fit(self) -> dict[str, float]:
        """Train to ``solver.steps``, checkpointing every ``checkpoint.every`` steps and on SIGTERM."""
        previous = signal.signal(signal.SIGTERM, self._on_sigterm) if _main_thread() else None
        every = int(self.cfg["checkpoint"]["every"])
        signal_after = _signal_after_step()
        bar = progress_bar(total=self.total_steps, initial=self.step, disable=not self.info.is_main, desc="training",
                           unit="steps")
        metrics: dict[str, float] = {}
        try:
            while self.step < self.total_steps:
                self.backend.train()
                frozen = frozen_codec(self.backend)
                if frozen is not None:
                    frozen.eval()
                metrics = self.train_step()
                self.step += 1
                self._log(metrics)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics.get('loss', math.nan):.3f}")
                self._periodic(metrics)
                if signal_after is not None and self.step == signal_after[0]:
                    os.kill(os.getpid(), signal_after[1])  # SIGTERM: handled below; SIGKILL: the process ends here
                stop = torch.tensor(float(self.stop_requested))
                if bool(D.all_reduce_max(stop, self.info)):
                    self.save()
                    log.info("SIGTERM: checkpoint written at step %d, stopping", self.step)
                    return metrics
                if every > 0 and self.step % every == 0:
                    self.save()
            self.save()
        finally:
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return metrics

    def _periodic(self, metrics: dict[str, float]) -> None:
        valid_every = int(self.cfg.get("valid", {}).get("every", 0))
        if valid_every and self.step % valid_every == 0:
            name = "valid_loss" if hasattr(self.backend, "compute_loss") else "valid_ce"
            self._log({name: self.data.validation_loss(self.backend, self.device)}, prefix="")
        sample_every = int(self.cfg.get("samples", {}).get("every", 0))
        if sample_every and self.step % sample_every == 0 and self.info.is_main:
            self.write_samples()

    def _on_sigterm(self, signum: int, frame: object) -> None:
        """First SIGTERM: checkpoint after this step and stop. A second one (e.g. torchrun tearing down a
        failed job while this rank waits in a collective) exits at once."""
        if self.stop_requested:
            raise SystemExit(f"second SIGTERM at step {self.step}: exiting without a checkpoint")
        self.stop_requested = True

    def _log(self, metrics: dict[str, float], prefix: str = "") -> None:
        if not self.info.is_main:
            return
        record = {"step": self.step, **{prefix + k: round(v, 7) for k, v in metrics.items()}}
        with open(self.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        writer = self._tensorboard()
        if writer is not None:
            for name, value in metrics.items():
                writer.add_scalar(f"train/{prefix}{name}", value, self.step)

    def _tensorboard(self):
        if not self.cfg.get("log", {}).get("tensorboard", True):
            return None
        if not hasattr(self, "_writer"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:
                log.info("tensorboard is not installed: metrics go to metrics.jsonl and the console only")
                self._writer = None
        return self._writer

    # ----------------------------------------------------------------- outputs
    def save(self) -> None:
        """Write a training checkpoint (rank 0); all ranks wait for it."""
        if self.info.is_main:
            state = {
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": capture_rng(self._rng_generators()),
                "skipped_steps": self.skipped_steps,
            }
            keep = int(self.cfg["checkpoint"].get("keep", 2))
            save_checkpoint(self.run_dir, self.step, self.module, self.ema.state_dict(), state, keep)
        if self.info.enabled:
            torch.distributed.barrier()

    @torch.no_grad()
    def write_samples(self) -> list[Path]:
        from tokenlm.api import TextToAudio

        samples = self.cfg.get("samples", {})
        prompts = list(samples.get("prompts") or self.data.sample_prompts(4))
        self.backend.eval()
        audio = TextToAudio(self.backend).generate(prompts, float(samples.get("duration", 2.0)), seed=0)
        return audio.save(self.run_dir / "samples" / f"step_{self.step:08d}.wav")

    def export(self, directory: Path | None = None) -> Path:
        """Write the inference checkpoint folder (EMA weights unless ``export.use_ema`` is false)."""
        directory = Path(directory or self.run_dir / "export")
        if self.info.is_main:
            if self.cfg.get("export", {}).get("use_ema", True):
                self.ema.copy_to(self.module)
            backend = self.backend.eval()
            getattr(backend, "export_pretrained", backend.save_pretrained)(directory)
        if self.info.enabled:
            torch.distributed.barrier()
        return directory


def frozen_codec(backend: nn.Module) -> nn.Module | None:
    """The frozen codec a generation backend trains on; None for a codec being trained (``backend: codec``)."""
    return getattr(backend, "codec", None)


def condition_dropout(cfg: dict[str, Any]) -> ConditionDropout:
    """The recipe's dropout: ``solver.cfg_dropout`` / ``solver.per_sample_cfg`` and each conditioner entry's
    ``dropout`` (the probability of dropping that attribute alone)."""
    solver = cfg["solver"]
    per_attribute = {
        entry["attribute"]: float(entry["dropout"]) for entry in cfg.get("conditioners") or [] if entry.get("dropout")
    }
    return ConditionDropout(float(solver["cfg_dropout"]), bool(solver.get("per_sample_cfg")), per_attribute)


def _signal_after_step() -> tuple[int, signal.Signals] | None:
    """The ``TOKENLM_SIGNAL_AFTER_STEP`` test hook as (step, signal), or None when unset."""
    value = os.environ.get(SIGNAL_AFTER_STEP_ENV, "").strip()
    if not value:
        return None
    step, _, name = value.partition(":")
    try:
        return int(step), signal.Signals[name or "SIGTERM"]
    except (KeyError, ValueError) as error:
        raise ValueError(f"{SIGNAL_AFTER_STEP_ENV} must be STEP:SIGNAL (e.g. 9:SIGKILL), got {value!r}") from error


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()

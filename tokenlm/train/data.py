"""Batches for the trainer: deterministic by position, so a resumed run reads exactly what it would have."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from conditioners.base import AudioValue
from tokenlm.data.dataset import AudioSegmentDataset, collate_audio, read_segment
from tokenlm.data.manifest import read_manifest
from tokenlm.lm.backend import LMBackend
from tokenlm.train.distributed import DistInfo, all_reduce_mean

log = logging.getLogger(__name__)


class PositionSampler(Sampler[list[int]]):
    """Index lists of micro-batches ``start, start + 1, ...``; micro-batch m of rank r holds the dataset items
    ``m * global_batch + r * local_batch + [0, local_batch)``. Items depend only on their index, so the
    same micro-batch position always gives the same data, whatever the number of workers or ranks."""

    def __init__(self, start: int, local_batch: int, info: DistInfo) -> None:
        self.start, self.local_batch, self.info = start, local_batch, info

    def __iter__(self) -> Iterator[list[int]]:
        position = self.start
        global_batch = self.local_batch * self.info.world_size
        while True:
            first = position * global_batch + self.info.rank * self.local_batch
            yield list(range(first, first + self.local_batch))
            position += 1


def captions_of(manifests: list[str | Path], attribute: str = "description") -> list[str]:
    """The text values of ``attribute`` in the manifests (for training a tokenizer)."""
    texts = []
    for manifest in manifests:
        texts += [str(e.attributes[attribute]) for e in read_manifest(manifest) if e.attributes.get(attribute)]
    return texts


def category_values(manifests: list[str | Path], attribute: str) -> list[str]:
    """The distinct string values of ``attribute`` in the manifests (list values flattened), sorted."""
    values: set[str] = set()
    for manifest in manifests:
        for entry in read_manifest(manifest):
            value = entry.attributes.get(attribute)
            items = value if isinstance(value, (list, tuple)) else [value]
            values.update(item for item in items if isinstance(item, str) and item.strip())
    return sorted(values)


class TrainData:
    """Training and validation batches of a recipe's ``data`` section."""

    def __init__(self, cfg: dict[str, Any], backend: LMBackend, info: DistInfo, seed: int) -> None:
        data = cfg["data"]
        batch_size = int(cfg["solver"]["batch_size"])
        if batch_size % info.world_size:
            raise ValueError(f"solver.batch_size {batch_size} must be divisible by the {info.world_size} ranks")
        self.local_batch = batch_size // info.world_size
        self.info, self.num_workers = info, int(data.get("num_workers", 0))
        self.attributes = set(backend.attributes)
        self.sample_rate = backend.sample_rate
        # attributes whose conditioner trains on the clip itself (CLAP with train_on: audio)
        self.audio_attributes = [
            name for name, c in backend.conditioning.conditioners.items() if c.uses_training_audio
        ]
        train = data["train"] if isinstance(data["train"], list) else [data["train"]]
        common = dict(
            segment_duration=float(data["segment_duration"]), sample_rate=backend.sample_rate,
            channels=backend.channels,
        )
        self.collate = collate_audio
        if data.get("cache"):  # codes pre-encoded by `tokenlm data encode`: no codec in the training loop
            from tokenlm.data.token_cache import TokenDataset, collate_codes

            frames = max(1, round(float(data["segment_duration"]) * backend.frame_rate))
            self.train = TokenDataset(data["cache"], frames, seed=seed)
            self.train.check_codec(backend.codec)
            self.collate = collate_codes
        else:
            self.train = AudioSegmentDataset(
                train, weights=data.get("weights"), seed=seed, mixup=float(data.get("mixup", 0.0)), **common
            )
        self.valid = AudioSegmentDataset(data["valid"], seed=seed + 7, **common) if data.get("valid") else None
        self.valid_batches = int(cfg.get("valid", {}).get("batches", 2))
        self._loader: Iterator[dict[str, Any]] | None = None
        self._position = -1

    def _filter(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Keep only the attributes the model's conditioners claim (manifests may carry more metadata)."""
        batch["attributes"] = [{k: v for k, v in a.items() if k in self.attributes} for a in batch["attributes"]]
        return batch

    def _with_audio(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Give conditioners that train on audio each sample's clip (its valid samples) as their value."""
        if not self.audio_attributes:
            return batch
        if "wav" in batch:
            clips = [AudioValue(wav[:, : max(1, int(mask.sum()))].float(), int(self.sample_rate))  # [C, N], [N]
                     for wav, mask in zip(batch["wav"], batch["mask"], strict=True)]
        elif "source" in batch:  # a token cache: each segment's audio is read from its source file
            clips = [AudioValue(*read_segment(*source)) for source in batch["source"]]
        else:
            raise ValueError(
                f"conditioner(s) for {self.audio_attributes} train on audio (train_on: audio), but this batch holds "
                "neither audio nor the source of its codes; train from the audio manifest (data.cache=null)"
            )
        for clip, item in zip(clips, batch["attributes"], strict=True):
            for name in self.audio_attributes:
                item[name] = clip
        return batch

    def train_batch(self, position: int) -> dict[str, Any]:
        """The micro-batch at ``position`` (consecutive calls stream from worker processes)."""
        if self._loader is None or position != self._position + 1:
            sampler = PositionSampler(position, self.local_batch, self.info)
            # the loader's own generator: creating it (again on resume) must not draw from the global RNG, which
            # the model's dropout reads and checkpoints restore
            loader = DataLoader(
                self.train, batch_sampler=sampler, num_workers=self.num_workers, collate_fn=self.collate,
                pin_memory=torch.cuda.is_available(), persistent_workers=self.num_workers > 0,
                generator=torch.Generator().manual_seed(position),
            )
            self._loader = iter(loader)
        self._position = position
        return self._with_audio(self._filter(next(self._loader)))

    @staticmethod
    @torch.no_grad()
    def to_codes(batch: dict[str, Any], backend: LMBackend, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``[B, K, T]`` and valid frames ``[B, T]`` of a batch (audio is encoded by the frozen codec)."""
        if "codes" in batch:
            return batch["codes"].to(device), batch["mask"].to(device)
        wav = batch["wav"].to(device, non_blocking=True)
        codes = backend.codec.encode(wav)  # [B, K, T]
        hop = wav.shape[-1] / codes.shape[-1]
        starts = (torch.arange(codes.shape[-1], device=device) * hop).long()
        return codes, batch["mask"].to(device)[:, starts]  # a frame is valid when its first sample is

    @classmethod
    def inputs(cls, batch: dict[str, Any], backend: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """What the backend trains on, ``[B, K|D, T]``, and its valid frames ``[B, T]``: the backend's own
        ``training_inputs`` (diffusion latents) or codec codes."""
        if hasattr(backend, "training_inputs"):
            return backend.training_inputs(batch, device)
        return cls.to_codes(batch, backend, device)

    @torch.no_grad()
    def validation_loss(self, backend: LMBackend, device: torch.device) -> float:
        """Mean validation loss on the first ``valid.batches`` batches (conditions kept): cross-entropy for
        the LM, the backend's ``compute_loss`` otherwise."""
        if self.valid is None:
            return float("nan")
        from tokenlm.lm.objective import LMObjective, lm_loss

        backend.eval()
        losses = []
        for position in range(self.valid_batches):
            first = position * self.local_batch * self.info.world_size + self.info.rank * self.local_batch
            items = [self.valid[i] for i in range(first, first + self.local_batch)]
            batch = self._with_audio(self._filter(collate_audio(items)))
            codes, mask = self.inputs(batch, backend, device)
            dropped = torch.zeros(codes.shape[0], dtype=torch.bool, device=device)
            if hasattr(backend, "compute_loss"):
                losses.append(backend.compute_loss(codes, mask, batch["attributes"], dropped)["loss"])
                continue
            losses.append(lm_loss(backend, codes, mask, batch["attributes"], dropped, LMObjective(rr_mode="off"))["ce"])
        backend.train()
        return float(all_reduce_mean(torch.stack(losses).mean(), self.info))

    def sample_prompts(self, count: int) -> list[dict[str, Any]]:
        """Attribute dicts of the first validation (or training) items, for sample generation."""
        source = self.valid or self.train
        return [self._filter({"attributes": [source[i]["attributes"]]})["attributes"][0] for i in range(count)]

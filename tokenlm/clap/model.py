"""A CLAP that trains from scratch on tokenlm's trainer: transformers' ``ClapModel`` (HTSAT audio encoder on log-mel
features, RoBERTa text encoder, projections into one joint space) with the symmetric InfoNCE loss and learned
temperatures, and a ``ClapProcessor`` whose tokenizer is trained on the data set's captions.

The trained model is saved as a plain ``ClapModel`` + ``ClapProcessor`` folder, so the CLAP conditioner
(``conditioners/clap.py``), the evaluation's CLAP score and CLAP-FAD load it like a released CLAP.

Example::

    trainee = ClapTrainee.build(ClapTrainingConfig(), captions, work_dir)   # untrained, tokenizer trained
    losses = trainee.compute_loss(wav, mask, [{"description": c} for c in batch_captions])
    trainee.export_pretrained("clap")                                      # a ClapModel + ClapProcessor folder
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

from tokenlm.common.checkpoint import CheckpointError

TRAINEE_CONFIG = "clap_trainee.json"
POSITIVES = ("caption", "index")


def default_audio_config() -> dict[str, Any]:
    """``ClapAudioConfig`` keywords of a small HTSAT: a 128 x 128 mel image (256 frames x 64 mel bins folded
    twice), 4 x 4 patches, three Swin stages of widths 48 / 96 / 192."""
    return {
        "spec_size": 128, "num_mel_bins": 64, "window_size": 8, "patch_size": 4, "patch_stride": 4,
        "patch_embeds_hidden_size": 48, "depths": [1, 2, 2], "num_attention_heads": [2, 4, 8], "hidden_size": 192,
        "enable_fusion": False,
    }


def default_text_config() -> dict[str, Any]:
    """``ClapTextConfig`` keywords of a small RoBERTa (its ``vocab_size`` comes from the trained tokenizer)."""
    return {
        "hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512,
        "max_position_embeddings": 80,
    }


def default_features() -> dict[str, Any]:
    """``ClapFeatureExtractor`` keywords: 16 kHz log-mel, 64 bins, hop 256 (62.5 frames/s), clips up to 4 s."""
    return {
        "feature_size": 64, "sampling_rate": 16000, "hop_length": 256, "fft_window_size": 1024, "max_length_s": 4,
        "frequency_min": 20, "frequency_max": 8000, "padding": "repeatpad", "truncation": "rand_trunc",
    }


@dataclass
class ClapTrainingConfig:
    """What :class:`ClapTrainee` builds and how it trains (stored in ``clap_trainee.json``).

    ``positives``: ``"caption"`` counts every pair in a batch whose captions are the same text as a positive
    (the synthetic data repeats captions); ``"index"`` is plain InfoNCE (only pair i-i is positive).
    """

    audio: dict[str, Any] = field(default_factory=default_audio_config)
    text: dict[str, Any] = field(default_factory=default_text_config)
    features: dict[str, Any] = field(default_factory=default_features)
    projection_dim: int = 128
    vocab_size: int = 1000
    max_length: int = 64
    attribute: str = "description"
    positives: str = "caption"
    logit_scale_init: float = 1 / 0.07
    logit_scale_max: float = 100.0

    def __post_init__(self) -> None:
        if self.positives not in POSITIVES:
            raise ValueError(f"positives must be one of {POSITIVES}, got {self.positives!r}")
        if not 1 < self.logit_scale_init <= self.logit_scale_max:
            raise ValueError(f"need 1 < logit_scale_init <= logit_scale_max, got {self.logit_scale_init} and "
                             f"{self.logit_scale_max}")


def _features(output: Any) -> torch.Tensor:
    """The projected embedding, whether transformers returns a tensor or an output with ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClapTrainee(nn.Module):
    """A trainable ``ClapModel`` and its ``ClapProcessor``; the trainer's ``backend: clap``."""

    name = "clap"

    def __init__(self, config: ClapTrainingConfig, processor: ClapProcessor, model: ClapModel | None = None) -> None:
        super().__init__()
        self.config, self.processor = config, processor
        extractor = processor.feature_extractor
        if int(extractor.feature_size) != int(config.audio.get("num_mel_bins", 64)):
            raise ValueError(f"the feature extractor's {extractor.feature_size} mel bins differ from the audio "
                             f"encoder's num_mel_bins {config.audio.get('num_mel_bins')}")
        text = {**config.text, "vocab_size": len(processor.tokenizer), "projection_dim": config.projection_dim,
                "pad_token_id": processor.tokenizer.pad_token_id}
        audio = {**config.audio, "projection_dim": config.projection_dim}
        self.model = model if model is not None else ClapModel(ClapConfig(
            text_config=text, audio_config=audio, projection_dim=config.projection_dim,
            logit_scale_init_value=config.logit_scale_init,
        ))

    @classmethod
    def build(cls, config: ClapTrainingConfig, captions: Sequence[str], work_dir: str | Path) -> ClapTrainee:
        """An untrained trainee whose tokenizer is trained on ``captions`` (written under ``work_dir``)."""
        from tokenlm.clap.tokenizer import train_caption_tokenizer

        if not any(str(c).strip() for c in captions):
            raise ValueError(
                f"CLAP training needs captions (the {config.attribute!r} attribute) and the training manifest has "
                "none; a caption-less manifest can still train a diffusion model on CLAP audio embeddings "
                "(recipe demo_ldm_clap, conditioner train_on: audio) with a CLAP trained elsewhere"
            )
        tokenizer = train_caption_tokenizer(captions, Path(work_dir) / "clap_tokenizer", config.vocab_size,
                                            config.max_length)
        extractor = ClapFeatureExtractor(**config.features)
        return cls(config, ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer))

    # ------------------------------------------------------------------ what the trainer uses
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def sample_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)

    @property
    def channels(self) -> int:
        return 1

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / int(self.processor.feature_extractor.hop_length)

    @property
    def attributes(self) -> list[str]:
        """The caption attribute the text encoder reads."""
        return [self.config.attribute]

    @property
    def conditioning(self):
        """No conditioners: captions are the text encoder's own input."""
        from conditioners.provider import ConditioningProvider

        return ConditioningProvider([])

    def trainable_modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"model": self.model})

    def training_inputs(self, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's waveform ``[B, 1, N]`` and its valid samples ``[B, N]``."""
        if "wav" not in batch:
            raise ValueError("CLAP training needs audio batches, not a token cache; set data.cache=null")
        return batch["wav"].to(device, non_blocking=True), batch["mask"].to(device)

    # ------------------------------------------------------------------ embeddings
    def audio_features(self, wav: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel features ``[B, 1, frames, mels]`` of ``wav`` ``[B, 1, N]`` (valid samples only), computed by
        the processor's feature extractor exactly as at inference."""
        if wav.ndim != 3 or wav.shape[1] != 1:
            raise ValueError(f"CLAP audio must be mono [B, 1, N], got shape {tuple(wav.shape)}")
        lengths = mask.sum(-1).tolist() if mask is not None else [wav.shape[-1]] * wav.shape[0]
        waves = [row[0, : max(1, int(n))].detach().float().cpu().numpy() for row, n in zip(wav, lengths, strict=True)]
        features = self.processor.feature_extractor(waves, sampling_rate=self.sample_rate, return_tensors="pt")
        return features["input_features"].to(self.device)

    def embed_audio(self, wav: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-norm audio embeddings ``[B, P]`` of ``wav`` ``[B, 1, N]``."""
        features = _features(self.model.get_audio_features(input_features=self.audio_features(wav, mask)))
        return F.normalize(features.float(), dim=-1)

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings ``[B, P]``."""
        tokens = self.processor.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        output = self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                              attention_mask=tokens["attention_mask"].to(self.device))
        return F.normalize(_features(output).float(), dim=-1)

    def _captions(self, attributes: Sequence[dict[str, Any]]) -> list[str]:
        name = self.config.attribute
        captions = [str(item.get(name) or "").strip() for item in attributes]
        missing = [i for i, caption in enumerate(captions) if not caption]
        if missing:
            raise ValueError(f"CLAP training needs a caption ({name!r}) for every clip; batch rows {missing} have "
                             "none (a caption-less manifest can train an LDM on CLAP audio embeddings, not a CLAP)")
        return captions

    def positives(self, captions: Sequence[str]) -> torch.Tensor:
        """``[B, B]`` boolean: which text-audio pairs of the batch count as matching."""
        size = len(captions)
        if self.config.positives == "index":
            return torch.eye(size, dtype=torch.bool, device=self.device)
        keys = [" ".join(caption.lower().split()) for caption in captions]
        return torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.bool, device=self.device)

    def compute_loss(
        self, wav: torch.Tensor, mask: torch.Tensor | None = None, attributes: Sequence[dict[str, Any]] = (),
        dropped: torch.Tensor | None = None, attribute_dropped: Any = None,
    ) -> dict[str, torch.Tensor]:
        """Symmetric InfoNCE of the batch's ``wav`` ``[B, 1, N]`` and captions: cross-entropy of text->audio and
        audio->text similarity rows, scaled by learned temperatures (``logit_scale_t`` / ``logit_scale_a``, at
        most ``logit_scale_max``), against targets spread evenly over each row's positives."""
        if dropped is not None and bool(dropped.any()):
            raise ValueError("CLAP training takes no condition dropout: set solver.cfg_dropout=0")
        captions = self._captions(attributes)
        if len(captions) != wav.shape[0] or wav.shape[0] < 2:
            raise ValueError(f"contrastive training needs >= 2 clips with one caption each, got {wav.shape[0]} clips "
                             f"and {len(captions)} captions")
        audio = self.embed_audio(wav, mask)  # [B, P]
        text = self.embed_text(captions)  # [B, P]
        limit = torch.tensor(self.config.logit_scale_max, device=audio.device).log()
        scale_t = self.model.logit_scale_t.clamp(max=limit).exp()
        scale_a = self.model.logit_scale_a.clamp(max=limit).exp()
        similarity = text @ audio.T  # [B_text, B_audio]
        positive = self.positives(captions).float()
        targets = positive / positive.sum(-1, keepdim=True)
        loss_t2a = F.cross_entropy(scale_t * similarity, targets)
        loss_a2t = F.cross_entropy(scale_a * similarity.T, targets.T / targets.T.sum(-1, keepdim=True))
        with torch.no_grad():
            hit = positive.gather(1, similarity.argmax(1, keepdim=True)).mean()  # text->audio top-1 in the batch
        return {"loss": (loss_t2a + loss_a2t) / 2, "t2a_acc": hit, "logit_scale": scale_t.detach()}

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> Path:
        """The training-time folder: the ``ClapModel`` + ``ClapProcessor`` files and ``clap_trainee.json``."""
        directory = self.export_pretrained(directory)
        config = {"backend": self.name, "training": dataclasses.asdict(self.config)}
        (directory / TRAINEE_CONFIG).write_text(json.dumps(config, indent=2))
        return directory

    def export_pretrained(self, directory: str | Path) -> Path:
        """The inference folder: ``ClapModel.save_pretrained`` + ``ClapProcessor.save_pretrained``."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        self.processor.save_pretrained(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> ClapTrainee:
        """Load a folder written by :meth:`save_pretrained`."""
        directory = Path(directory)
        path = directory / TRAINEE_CONFIG
        if not path.is_file():
            raise CheckpointError(f"{str(directory)!r} is not a CLAP-training folder (no {TRAINEE_CONFIG})")
        config = ClapTrainingConfig(**json.loads(path.read_text())["training"])
        processor = ClapProcessor.from_pretrained(directory, local_files_only=True)
        model = ClapModel.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
        trainee = cls(config, processor, model)
        if device is not None:
            trainee.to(device)
        return trainee.eval()

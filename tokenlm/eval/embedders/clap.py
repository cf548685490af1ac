"""CLAP audio and text embeddings through transformers' ``ClapModel``, from a local folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tokenlm.eval.embedders.base import AudioEmbedder, find_weights


def _features(output: object) -> torch.Tensor:
    """The projected embedding, whether transformers returns a tensor or an output with ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClapEmbedder(AudioEmbedder):
    """One unit-norm CLAP audio embedding per clip (``[1, D]``), and text embeddings for the CLAP score."""

    name = "clap"

    def __init__(self, model: torch.nn.Module, processor: object) -> None:
        self.model = model.eval()
        self.processor = processor
        self.sample_rate = int(processor.feature_extractor.sampling_rate)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ClapEmbedder:
        """Load ``ClapModel`` and ``ClapProcessor`` (feature extractor + tokenizer) saved in ``directory``."""
        from transformers import ClapModel, ClapProcessor

        find_weights(directory, ("config.json",), "CLAP")
        find_weights(directory, ("*.safetensors", "*.bin"), "CLAP")
        find_weights(directory, ("preprocessor_config.json", "processor_config.json"), "CLAP feature extractor")
        find_weights(directory, ("tokenizer.json", "vocab.json", "tokenizer_config.json"), "CLAP tokenizer")
        model = ClapModel.from_pretrained(directory, local_files_only=True, dtype=torch.float32)  # even from fp16
        processor = ClapProcessor.from_pretrained(directory, local_files_only=True)
        return cls(model, processor)

    @torch.no_grad()
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        inputs = self.processor.feature_extractor(wav.numpy(), sampling_rate=self.sample_rate, return_tensors="pt")
        features = _features(self.model.get_audio_features(**inputs))
        return torch.nn.functional.normalize(features.float(), dim=-1)  # [1, D]

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``[N, D]`` unit-norm text embeddings."""
        # truncated to the tokenizer's model_max_length: a longer caption would index past the position table
        inputs = self.processor.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        features = _features(self.model.get_text_features(**inputs))
        return torch.nn.functional.normalize(features.float(), dim=-1).double().numpy()

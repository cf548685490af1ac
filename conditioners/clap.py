"""CLAP conditioner (transformers ``ClapModel`` from a local folder): text at sampling, audio at training.

AudioLDM's trick: CLAP maps audio and text into one embedding space, so a model can be trained on the
CLAP *audio* embedding of each training clip (no captions needed) and sampled with the CLAP *text*
embedding of a prompt. With ``train_on="audio"`` the trainer passes each sample's clip as an
:class:`~conditioners.base.AudioValue`; :meth:`ClapConditioner.prepare` resamples it to CLAP's rate
(48 kHz for the released models) with :func:`tokenlm.audio.convert_audio` and computes its features on CPU.

``features="pooled"`` gives one token per sample: the unit-norm projected embedding (AudioLDM).
``features="penultimate"`` gives the text encoder's penultimate-layer token features (Stable Audio); it has
no audio counterpart, so it cannot train on audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import ClapConfig, ClapModel, ClapProcessor

from conditioners.base import AudioValue, Condition
from conditioners.text.frozen import FrozenTextConditioner, check_model_folder, load_pretrained

TRAIN_ON = ("text", "audio")
FEATURES = ("pooled", "penultimate")


def _load_processor(folder: Path) -> Any:
    try:
        return ClapProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(
            f"{str(folder)!r} has no usable CLAP processor files (feature extractor + tokenizer): {err}"
        ) from err


class ClapConditioner(FrozenTextConditioner):
    """Frozen CLAP embeddings, projected to ``output_dim``.

    Args:
        attribute: the attribute this conditioner reads (``"description"``).
        output_dim: feature size of the returned embeddings (``None``: CLAP's width).
        model_path: local folder with a ``ClapModel`` and its ``ClapProcessor`` files.
        model, processor: ready objects instead of a folder.
        train_on: ``"text"`` (captions) or ``"audio"`` (the training clip; prompts are still text at sampling).
        features: ``"pooled"`` (one joint-space token) or ``"penultimate"`` (text token features).
        max_length: truncation length of the text in tokens.
        cache_dir: an on-disk cache of text embeddings (optional).

    Example:
        >>> cond = ClapConditioner("description", 512, "/models/clap-htsat-unfused", train_on="audio")  # doctest: +SKIP
    """

    kind = "clap"
    value_types = (str, AudioValue)
    asset_subdir = "clap"
    path_argument = "model_path"

    def __init__(
        self,
        attribute: str = "description",
        output_dim: int | None = None,
        model_path: str | Path | None = None,
        *,
        model: ClapModel | None = None,
        processor: Any = None,
        train_on: Literal["text", "audio"] = "text",
        features: Literal["pooled", "penultimate"] = "pooled",
        max_length: int | None = 77,
        cache_dir: str | Path | None = None,
        project: bool | Literal["auto"] = "auto",
    ) -> None:
        if train_on not in TRAIN_ON:
            raise ValueError(f"train_on must be one of {TRAIN_ON}, got {train_on!r}")
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        if train_on == "audio" and features != "pooled":
            raise ValueError(
                "train_on='audio' needs features='pooled': only the pooled CLAP embedding puts audio and text in "
                "one space (penultimate text tokens have no audio counterpart)"
            )
        if model is None or processor is None:
            if model_path is None:
                raise ValueError("ClapConditioner needs model_path (a local ClapModel folder) or model + processor")
            folder = check_model_folder(model_path, "CLAP", ("clap",))
            if model is None:
                model = load_pretrained(ClapModel, folder, "CLAP")
            if processor is None:
                processor = _load_processor(folder)
        if not isinstance(model, ClapModel):
            raise TypeError(f"model must be a transformers ClapModel, got {type(model).__name__}")
        hidden = model.config.projection_dim if features == "pooled" else model.config.text_config.hidden_size
        super().__init__(
            attribute, output_dim, tokenizer=processor.tokenizer, hidden_size=int(hidden), max_length=max_length,
            cache_dir=cache_dir, project=project,
        )
        self.model = model
        self.processor = processor
        self.train_on, self.features = train_on, features
        self.sample_rate = int(processor.feature_extractor.sampling_rate)
        self.freeze_encoder()

    @property
    def encoder_module(self) -> nn.Module:
        return self.model

    @property
    def preprocessor(self) -> Any:
        return self.processor

    @property
    def uses_training_audio(self) -> bool:
        return self.train_on == "audio"

    def cache_options(self) -> tuple[Any, ...]:
        return (self.kind, self.max_length, self.features)

    def validate(self, value: Any) -> None:
        super().validate(value)
        if isinstance(value, AudioValue) and self.features != "pooled":
            raise ValueError(
                f"attribute {self.attribute!r}: CLAP features='penultimate' embed text only, got {value!r}"
            )

    # ------------------------------------------------------------------ encoding
    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled: the unit-norm text embedding ``[B, 1, P]``; penultimate: token features ``[B, S, H]``."""
        if self.features == "pooled":
            pooled = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
            return pooled[:, None], torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device)
        out = self.model.text_model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return out.hidden_states[-2], attention_mask.bool()  # [B, S, H]

    def prepare(self, values: list[Any]) -> dict[str, Any]:
        """Tokenise the texts and compute CLAP audio features of the clips, on CPU."""
        inputs = super().prepare(values)
        clips = [(i, v) for i, v in enumerate(values) if isinstance(v, AudioValue)]
        inputs["audio_rows"] = [i for i, _ in clips]
        inputs["audio"] = None
        if clips:
            from tokenlm.audio import convert_audio

            waves = [convert_audio(v.wav.float(), v.sample_rate, self.sample_rate, 1)[0].numpy() for _, v in clips]
            inputs["audio"] = dict(
                self.processor.feature_extractor(waves, sampling_rate=self.sample_rate, return_tensors="pt")
            )
        return inputs

    def forward(self, inputs: dict[str, Any]) -> Condition:
        """Embeds ``[B, S, output_dim]`` (S = 1 when pooled) and mask ``[B, S]``; text and audio rows may mix."""
        rows = self.text_rows(inputs)
        if inputs["audio"] is not None:
            device = self.device
            features = {k: v.to(device) for k, v in inputs["audio"].items()}
            with torch.no_grad():
                pooled = self.model.get_audio_features(**features).pooler_output  # [n, P]
            for j, i in enumerate(inputs["audio_rows"]):
                rows[i] = pooled[j : j + 1]  # [1, P]
        return self.project(rows)

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        return {**super().config(), "train_on": self.train_on, "features": self.features}

    @classmethod
    def load_assets(cls, folder: Path) -> dict[str, Any]:
        """A randomly initialised ``ClapModel`` and the processor saved in ``folder``."""
        folder = check_model_folder(folder, "CLAP", ("clap",))
        model = ClapModel(ClapConfig.from_pretrained(folder, local_files_only=True))
        return {"model": model, "processor": _load_processor(folder)}

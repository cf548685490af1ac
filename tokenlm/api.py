"""The user API: ``TextToAudio.from_pretrained(dir).generate(prompts, duration) -> Audio``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tokenlm.audio import convert_audio, load_audio, write_audio
from tokenlm.backends import get_backend_class
from tokenlm.common.checkpoint import read_config
from tokenlm.lm.sampling import SamplingParams

Prompt = str | dict[str, Any]


@dataclass
class Audio:
    """Generated audio.

    Attributes:
        wav: ``[B, C, N]`` float32 in [-1, 1].
        sample_rate: samples per second.
        codes: ``[B, K, T]`` codec tokens when asked for (``return_codes=True``).
    """

    wav: torch.Tensor
    sample_rate: int
    codes: torch.Tensor | None = None

    @property
    def duration(self) -> float:
        return self.wav.shape[-1] / self.sample_rate

    def __len__(self) -> int:
        return self.wav.shape[0]

    def save(self, path: str | Path, normalize: str = "peak") -> list[Path]:
        """Write one file per item: ``path`` itself for one item, ``stem_0.wav``, ``stem_1.wav``... for more."""
        path = Path(path)
        if len(self) == 1:
            return [write_audio(path, self.wav[0], self.sample_rate, normalize=normalize)]
        return [
            write_audio(path.with_name(f"{path.stem}_{i}{path.suffix}"), wav, self.sample_rate, normalize=normalize)
            for i, wav in enumerate(self.wav)
        ]


def normalize_prompts(prompts: Prompt | Sequence[Prompt]) -> list[dict[str, Any]]:
    """Strings become ``{"description": text}``; dicts are copied; anything else is an error."""
    if isinstance(prompts, (str, dict)):
        prompts = [prompts]
    if not isinstance(prompts, Sequence) or len(prompts) == 0:
        raise ValueError(f"prompts must be a string, an attribute dict, or a non-empty list of them; got {prompts!r}")
    attributes = []
    for index, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            if not prompt.strip():
                raise ValueError(f"prompt {index} is an empty string; describe the sound you want")
            attributes.append({"description": prompt})
        elif isinstance(prompt, dict):
            if not prompt:
                raise ValueError(f"prompt {index} is an empty dict; give at least one attribute")
            attributes.append(dict(prompt))
        else:
            raise ValueError(
                f"prompt {index} must be a string or an attribute dict, got {type(prompt).__name__} {prompt!r}"
            )
    return attributes


def _check_duration(duration: object) -> float:
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration):
        raise ValueError(f"duration must be a finite number of seconds, got {duration!r}")
    if duration <= 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
    return float(duration)


class TextToAudio:
    """Text-to-audio and text-to-music generation with any tokenlm backend.

    Example:
        >>> model = TextToAudio.from_pretrained("checkpoints/sfx")        # doctest: +SKIP
        >>> audio = model.generate("a dog barks twice", duration=5, seed=0)  # doctest: +SKIP
        >>> audio.save("dog.wav")                                        # doctest: +SKIP
    """

    def __init__(self, backend: torch.nn.Module) -> None:
        self.backend = backend

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None) -> TextToAudio:
        """Load a tokenlm checkpoint folder (or a transformers MusicGen folder, converted on the fly)."""
        path = Path(path)
        config = read_config(path)
        if str(config.get("model_type", "")).startswith("musicgen"):  # MusicGen (Melody is refused there)
            from tokenlm.convert.musicgen_hf import load_musicgen_hf

            backend = load_musicgen_hf(path)
            return cls(backend.to(device) if device is not None else backend)
        backend_class = get_backend_class(str(config.get("backend", "lm")))
        return cls(backend_class.from_pretrained(path, device=device))

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model as a tokenlm checkpoint folder."""
        return self.backend.save_pretrained(directory)

    @property
    def sample_rate(self) -> int:
        return self.backend.sample_rate

    @property
    def attributes(self) -> list[str]:
        """The prompt attributes this model is conditioned on (e.g. ``["description"]``)."""
        return self.backend.attributes

    def generate(
        self,
        prompts: Prompt | Sequence[Prompt],
        duration: float,
        *,
        top_k: int = 250,
        top_p: float = 0.0,
        temperature: float = 1.0,
        cfg_coef: float = 3.0,
        two_step_cfg: bool = False,
        seed: int | None = None,
        progress: bool = False,
        callback: Callable[[int, int], None] | None = None,
        return_codes: bool = False,
        prompt_audio: torch.Tensor | str | Path | None = None,
        prompt_sample_rate: int | None = None,
        extend_stride: float | None = None,
    ) -> Audio:
        """Generate ``duration`` seconds of audio for each prompt.

        Args:
            prompts: a description, an attribute dict (``{"description": ..., "genre": ...}``), or a list.
            duration: seconds of audio per prompt (longer than the model's window is generated by windows).
            top_k, top_p, temperature: sampling; ``temperature=0`` is greedy.
            cfg_coef: classifier-free guidance strength (1 = none).
            seed: makes the output reproducible.
            prompt_audio: audio to continue, ``[C, N]`` / ``[B, C, N]`` tensor at ``prompt_sample_rate``,
                or a file path; the output starts with it.
            extend_stride: seconds the window advances when ``duration`` exceeds the model's window.
        Returns:
            :class:`Audio` with ``wav`` ``[B, C, N]``, N = duration x sample rate.
        """
        attributes = normalize_prompts(prompts)
        duration = _check_duration(duration)
        params = SamplingParams(top_k, top_p, temperature, cfg_coef, two_step_cfg)
        prompt = self._prompt_codes(prompt_audio, prompt_sample_rate, len(attributes))
        codes = self.backend.generate_tokens(
            attributes, duration, params, prompt=prompt, extend_stride=extend_stride, seed=seed,
            progress=progress, callback=callback,
        )
        wav = self.backend.decode(codes)[..., : round(duration * self.sample_rate)].cpu()
        return Audio(wav, self.sample_rate, codes.cpu() if return_codes else None)

    def _prompt_codes(
        self, prompt_audio: torch.Tensor | str | Path | None, sample_rate: int | None, batch: int
    ) -> torch.Tensor | None:
        if prompt_audio is None:
            return None
        backend = self.backend
        if isinstance(prompt_audio, (str, Path)):
            wav = load_audio(prompt_audio, backend.sample_rate, backend.channels)  # [C, N]
        elif isinstance(prompt_audio, torch.Tensor):
            if sample_rate is None:
                raise ValueError("prompt_sample_rate is needed with a prompt_audio tensor")
            wav = convert_audio(prompt_audio.float(), sample_rate, backend.sample_rate, backend.channels)
        else:
            raise ValueError(f"prompt_audio must be a tensor or a file path, got {type(prompt_audio).__name__}")
        if wav.dim() == 2:
            wav = wav[None].expand(batch, -1, -1)  # [B, C, N]
        if wav.dim() != 3 or wav.shape[0] != batch:
            raise ValueError(
                f"prompt_audio must be [C, N] or [B, C, N] with B = {batch} prompts, got {tuple(wav.shape)}"
            )
        if wav.shape[-1] == 0:
            raise ValueError("prompt_audio is empty")
        return backend.encode_audio(wav)

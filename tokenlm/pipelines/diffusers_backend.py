"""Backend ``diffusers``: a local diffusers audio pipeline folder (AudioLDM, AudioLDM 2, MusicLDM, Stable Audio) behind
tokenlm's API.

``TextToAudio.from_pretrained(dir)`` on a folder with ``model_index.json`` loads the pipeline it names (local files
only) and ``generate`` calls it with the prompts' descriptions, the duration, ``steps`` (``num_inference_steps``),
``cfg_coef`` (``guidance_scale``), a negative prompt and a CPU generator seeded with ``seed``: the waveform is what
the pipeline itself returns for those arguments, as ``[B, C, N]`` at the pipeline's sample rate.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tokenlm.common.checkpoint import CheckpointError
from tokenlm.common.hf import quiet_hf_loading

MODEL_INDEX = "model_index.json"
PROMPT_ATTRIBUTE = "description"


# ---------------------------------------------------------------- what differs between the supported pipelines
@dataclass(frozen=True)
class PipelineSpec:
    """How one diffusers pipeline class takes tokenlm's arguments.

    Attributes:
        length_argument: the ``__call__`` argument that sets the length in seconds.
        sample_rate, channels: read from the loaded pipeline.
        duration_range: ``(low, high)`` seconds the pipeline accepts (``high`` None: no maximum); ``low`` is
            exclusive when it is 0, inclusive otherwise.
        request_seconds: the length argument for ``(duration, n)``: ``duration`` itself when the pipeline returns
            at least ``n`` samples for it (so the call is the one a user would make), else the next length that does.
    """

    length_argument: str
    sample_rate: Callable[[Any], int]
    channels: Callable[[Any], int]
    duration_range: Callable[[Any], tuple[float, float | None]]
    request_seconds: Callable[[Any, float, int], float]


def _nudge_up(seconds: float, ok: Callable[[float], bool]) -> float:
    """The first float at or a few ulps above ``seconds`` that ``ok`` (the pipeline's own arithmetic) accepts."""
    for _ in range(64):
        if ok(seconds):
            return seconds
        seconds = math.nextafter(seconds, math.inf)
    raise RuntimeError(f"no length in seconds near {seconds} gives the pipeline the samples asked for")


# AudioLDM, AudioLDM 2 and MusicLDM share one length arithmetic: a latent mel spectrogram (height = mel frames, a
# multiple of the VAE's scale) decoded by a HiFi-GAN vocoder that upsamples each frame to ``prod(upsample_rates)``
# samples. The helpers below compute it as their ``__call__`` does.
def _mel_hop(pipe: Any) -> int:
    """Waveform samples per mel frame of the vocoder."""
    return int(np.prod(pipe.vocoder.config.upsample_rates))


def _mel_returns(pipe: Any, seconds: float) -> int:
    """Samples the pipeline returns for ``audio_length_in_s=seconds``, computed as it computes them (0: it refuses):
    ``int(seconds / factor)`` mel frames rounded up to the VAE's scale, trimmed to ``int(seconds * rate)``."""
    rate, hop, scale = pipe.vocoder.config.sampling_rate, _mel_hop(pipe), pipe.vae_scale_factor
    factor = np.prod(pipe.vocoder.config.upsample_rates) / rate  # the pipeline's vocoder_upsample_factor
    if seconds < factor * scale:
        return 0
    frames = math.ceil(int(seconds / factor) / scale) * scale
    return min(frames * hop, int(seconds * rate))


def _mel_seconds(pipe: Any, duration: float, samples: int) -> float:
    """``duration`` when the pipeline returns ``samples`` for it; otherwise whole mel frames (a multiple of the VAE's
    scale) covering ``samples`` (the pipeline truncates both frames and samples, so such a length comes back short)."""
    if _mel_returns(pipe, duration) >= samples:
        return duration
    rate, hop, scale = pipe.vocoder.config.sampling_rate, _mel_hop(pipe), pipe.vae_scale_factor
    frames = math.ceil(math.ceil(samples / hop) / scale) * scale
    return _nudge_up(frames * hop / rate, lambda s: _mel_returns(pipe, s) >= samples)


def _mel_range(pipe: Any) -> tuple[float, float | None]:
    return 0.0, None  # any length: it is rounded up to whole latent frames and trimmed


def _stable_audio_window(pipe: Any) -> float:
    """The longest clip in seconds, computed as the pipeline computes ``max_audio_length_in_s``."""
    return pipe.transformer.config.sample_size * pipe.vae.hop_length / pipe.vae.config.sampling_rate


def _stable_audio_range(pipe: Any) -> tuple[float, float | None]:
    """``audio_end_in_s`` must fit the DiT window and the projection model's seconds range."""
    projection = pipe.projection_model.config
    return max(0.0, float(projection.min_value)), min(_stable_audio_window(pipe), float(projection.max_value))


def _stable_audio_seconds(pipe: Any, duration: float, samples: int) -> float:
    """``audio_end_in_s``: ``duration`` when the pipeline keeps ``samples`` of its window for it (it keeps
    ``int(end * rate)``), otherwise the nearest length above that does; never above the allowed range."""
    rate, high = pipe.vae.config.sampling_rate, _stable_audio_range(pipe)[1]
    duration = min(duration, high)
    if int(duration * rate) >= samples:
        return duration
    return min(_nudge_up(samples / rate, lambda s: int(s * rate) >= samples), high)


#: the mel-spectrogram pipelines (AudioLDM, AudioLDM 2, MusicLDM): mono at the vocoder's rate, any length
_MEL_SPEC = PipelineSpec(
    length_argument="audio_length_in_s",
    sample_rate=lambda pipe: int(pipe.vocoder.config.sampling_rate),
    channels=lambda pipe: 1,
    duration_range=_mel_range,
    request_seconds=_mel_seconds,
)

SPECS: dict[str, PipelineSpec] = {
    "AudioLDMPipeline": _MEL_SPEC,
    "AudioLDM2Pipeline": _MEL_SPEC,
    "MusicLDMPipeline": _MEL_SPEC,
    "StableAudioPipeline": PipelineSpec(
        length_argument="audio_end_in_s",
        sample_rate=lambda pipe: int(pipe.vae.config.sampling_rate),
        channels=lambda pipe: int(pipe.vae.config.audio_channels),
        duration_range=_stable_audio_range,
        request_seconds=_stable_audio_seconds,
    ),
}

#: the diffusers pipeline classes this backend runs
SUPPORTED_PIPELINES = tuple(SPECS)

#: text encoder classes each pipeline's ``__call__`` can use (AudioLDM reads ``text_embeds`` of a
#: ``ClapTextModelWithProjection``; MusicLDM calls ``get_text_features``, which only ``ClapModel`` has)
TEXT_ENCODERS: dict[str, tuple[str, ...]] = {
    "AudioLDMPipeline": ("ClapTextModelWithProjection",),
    "MusicLDMPipeline": ("ClapModel",),
}


def pipeline_defaults(class_name: str) -> tuple[int, float]:
    """``(num_inference_steps, guidance_scale)`` defaults of the diffusers pipeline class's ``__call__``."""
    import diffusers

    parameters = inspect.signature(getattr(diffusers, class_name).__call__).parameters
    return int(parameters["num_inference_steps"].default), float(parameters["guidance_scale"].default)


# ---------------------------------------------------------------- sampling parameters
@dataclass(frozen=True)
class PipelineParams:
    """How a diffusers pipeline samples.

    Attributes:
        steps: ``num_inference_steps``.
        cfg_coef: ``guidance_scale``; the pipelines guide only above 1 (at or below 1: conditional prediction only).
        negative_prompt: what guidance steers away from: one text for every prompt, one per prompt, or None.
    """

    steps: int
    cfg_coef: float
    negative_prompt: str | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be an int in [1, 1000], got {self.steps!r}")
        cfg = self.cfg_coef
        if isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or not math.isfinite(cfg) or cfg < 0:
            raise ValueError(f"cfg_coef must be a finite number >= 0 (<= 1 disables guidance), got {cfg!r}")

    @property
    def uses_cfg(self) -> bool:
        return self.cfg_coef > 1.0


# ---------------------------------------------------------------- folder checks
def is_diffusers_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a diffusers ``model_index.json``."""
    return (Path(path) / MODEL_INDEX).is_file()


def read_model_index(directory: Path) -> dict[str, Any]:
    """``model_index.json`` of a diffusers pipeline folder, checked to name a supported pipeline class."""
    if not directory.exists():
        raise FileNotFoundError(f"diffusers pipeline folder {str(directory)!r} does not exist")
    path = directory / MODEL_INDEX
    if not path.is_file():
        raise CheckpointError(f"{str(directory)!r} is not a diffusers pipeline folder: it has no {MODEL_INDEX}")
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(index, dict):
        raise CheckpointError(f"{str(path)!r} must hold a JSON object")
    class_name = index.get("_class_name")
    if class_name not in SPECS:
        raise CheckpointError(
            f"{str(directory)!r} holds diffusers pipeline {class_name!r}, which the diffusers backend does not run; "
            f"supported: {', '.join(SUPPORTED_PIPELINES)}"
        )
    if class_name == "AudioLDM2Pipeline" and _component_class(index, "text_encoder_2") == "VitsModel":
        raise CheckpointError(
            f"{str(directory)!r} is an AudioLDM 2 text-to-speech pipeline (text_encoder_2 VitsModel), which needs a "
            "transcription; the diffusers backend runs text-to-audio AudioLDM 2 (text_encoder_2 T5EncoderModel)"
        )
    text_encoder, allowed = _component_class(index, "text_encoder"), TEXT_ENCODERS.get(class_name)
    if allowed is not None and text_encoder not in allowed:
        raise CheckpointError(
            f"{str(directory)!r} is a {class_name} with text_encoder {text_encoder!r}, which its pipeline cannot "
            f"encode prompts with; a {class_name} needs text_encoder {' or '.join(allowed)}"
        )
    missing = [name for name in _component_names(index) if not (directory / name).is_dir()]
    if missing:
        raise CheckpointError(
            f"{str(directory)!r} lacks the component folder(s) {missing} that its {MODEL_INDEX} names for "
            f"{class_name}"
        )
    return index


def _component_names(index: dict[str, Any]) -> list[str]:
    """Components stored in sub-folders: entries ``[library, class]`` with both set (None marks an absent one)."""
    return [
        name for name, value in index.items()
        if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and None not in value
    ]


def _component_class(index: dict[str, Any], name: str) -> str | None:
    value = index.get(name)
    return value[1] if isinstance(value, list) and len(value) == 2 else None


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No per-component progress bars or info lines from diffusers and transformers while loading."""
    from diffusers.utils import logging as diffusers_logging

    was_enabled = diffusers_logging.is_progress_bar_enabled()
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    try:
        with quiet_hf_loading():
            yield
    finally:
        diffusers_logging.set_verbosity(verbosity)
        if was_enabled:
            diffusers_logging.enable_progress_bar()


def _component_overrides(directory: Path, index: dict[str, Any]) -> dict[str, Any]:
    """Components loaded by hand where the saved class no longer runs in the pipeline.

    AudioLDM 2 folders name ``GPT2Model`` as their language model; the pipeline steps it with generation helpers
    that transformers 5 keeps on ``GPT2LMHeadModel`` only. The same weights load into ``GPT2LMHeadModel``, whose
    last hidden state is the base model's, so the pipeline computes the same embeddings.
    """
    if index.get("_class_name") != "AudioLDM2Pipeline" or _component_class(index, "language_model") != "GPT2Model":
        return {}
    from transformers import GPT2LMHeadModel, GPT2Model

    if hasattr(GPT2Model, "_update_model_kwargs_for_generation"):
        return {}
    model = GPT2LMHeadModel.from_pretrained(directory / "language_model", local_files_only=True)
    return {"language_model": model.eval()}


def _tensor_text_features(clap: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``get_text_features`` of ``clap``'s class, as the embeddings tensor ``[B, P]`` (an output object unwrapped)."""
    features = type(clap).get_text_features(clap, *args, **kwargs)
    return features if isinstance(features, torch.Tensor) else features.pooler_output  # [B, P]


def _text_features_as_tensor(clap: nn.Module) -> None:
    """Make ``clap.get_text_features`` return the embeddings tensor ``[B, P]`` (in place, on this instance only).

    ``MusicLDMPipeline`` uses ``ClapModel.get_text_features(ids, attention_mask)`` as the L2-normalised text
    projection ``[B, P]``, which is what it returned up to transformers 4. transformers 5 returns an output object
    that holds that same tensor as ``pooler_output``, and the pipeline then fails on ``.to``; this unwraps it. A
    text encoder that already returns a tensor gives it unchanged, and a second call changes nothing. The method is
    bound to the instance (``deepcopy`` binds the copy's to the copy); the class and saved folders are unchanged.
    """
    bound = vars(clap).get("get_text_features")
    if isinstance(bound, types.MethodType) and bound.__func__ is _tensor_text_features:
        return
    clap.get_text_features = types.MethodType(_tensor_text_features, clap)


def adapt_pipeline(pipeline: Any) -> Any:
    """``pipeline``, adapted in place where the installed transformers changed what it calls; returns it.

    Today: a ``MusicLDMPipeline``'s ``ClapModel`` text encoder gets the tensor-returning ``get_text_features``
    the pipeline was written for (see :func:`_text_features_as_tensor`). The outputs are the pipeline's own.
    """
    text_encoder = getattr(pipeline, "text_encoder", None)
    if type(pipeline).__name__ == "MusicLDMPipeline" and hasattr(text_encoder, "get_text_features"):
        _text_features_as_tensor(text_encoder)
    return pipeline


def load_pipeline(directory: str | Path) -> Any:
    """The diffusers pipeline of a local folder (no downloads), with clear errors for unsupported folders."""
    import diffusers

    directory = Path(directory)
    index = read_model_index(directory)
    class_name = index["_class_name"]
    try:
        with _quiet_loading():
            overrides = _component_overrides(directory, index)
            pipeline = getattr(diffusers, class_name).from_pretrained(directory, local_files_only=True, **overrides)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{str(directory)!r}: {class_name} could not be loaded: {first_line}") from error
    return adapt_pipeline(pipeline)


# ---------------------------------------------------------------- the backend
class DiffusersBackend(nn.Module):
    """A diffusers audio pipeline as a tokenlm diffusion backend (it makes audio directly).

    The pipeline's torch components are registered as sub-modules, so ``to``, ``eval`` and ``parameters`` act on
    them. The prompt attribute is ``description``; ``steps`` and ``cfg_coef`` default to the pipeline's own
    defaults (AudioLDM: 10 and 2.5, AudioLDM 2: 200 and 3.5, MusicLDM: 200 and 2, Stable Audio: 100 and 7).

    Args:
        pipeline: an ``AudioLDMPipeline``, ``AudioLDM2Pipeline``, ``MusicLDMPipeline`` or ``StableAudioPipeline``
            (adapted in place by :func:`adapt_pipeline` where the installed transformers needs it).
    """

    name = "diffusers"
    sampling_parameters = ("steps", "cfg_coef", "negative_prompt")

    def __init__(self, pipeline: Any) -> None:
        super().__init__()
        class_name = type(pipeline).__name__
        if class_name not in SPECS:
            raise ValueError(
                f"the diffusers backend runs {', '.join(SUPPORTED_PIPELINES)}; got a {class_name}"
            )
        self.pipeline, self.pipeline_class, self.spec = adapt_pipeline(pipeline), class_name, SPECS[class_name]
        self.components = nn.ModuleDict(
            {name: module for name, module in pipeline.components.items() if isinstance(module, nn.Module)}
        )
        self.default_steps, self.default_cfg_coef = pipeline_defaults(class_name)

    # ---------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return next(self.components.parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate(self.pipeline)

    @property
    def channels(self) -> int:
        return self.spec.channels(self.pipeline)

    @property
    def attributes(self) -> list[str]:
        return [PROMPT_ATTRIBUTE]

    def duration_range(self) -> tuple[float, float | None]:
        """``(low, high)`` seconds this pipeline generates (``high`` None: no maximum)."""
        return self.spec.duration_range(self.pipeline)

    # ---------------------------------------------------------------- arguments
    def make_sampling(self, given: dict[str, Any]) -> PipelineParams:
        """The sampling parameters from the ones the caller gave (the rest take the pipeline's defaults)."""
        negative = given.get("negative_prompt")
        if negative is not None and not isinstance(negative, str):
            texts = tuple(negative) if isinstance(negative, Sequence) else None
            if texts is None or not all(isinstance(text, str) for text in texts):
                raise ValueError(f"negative_prompt must be a string or a list of strings, got {negative!r}")
            negative = texts
        return PipelineParams(steps=given.get("steps", self.default_steps),
                              cfg_coef=given.get("cfg_coef", self.default_cfg_coef), negative_prompt=negative)

    def check_duration(self, duration: float) -> int:
        """Samples of ``duration`` seconds (``round(duration * rate)``); outside the pipeline's range is an error."""
        low, high = self.duration_range()
        too_short = duration <= low if low == 0 else duration < low - 1e-9
        if too_short or (high is not None and duration > high + 1e-9):
            allowed = f"{'(' if low == 0 else '['}{low:g}, {'inf)' if high is None else f'{high:g}]'}"
            raise ValueError(
                f"duration {duration} s is outside what this {self.pipeline_class} generates: {allowed} seconds"
            )
        return max(1, round(duration * self.sample_rate))

    def prompt_texts(self, attributes: list[dict[str, Any]]) -> list[str]:
        """The ``description`` of each attribute dict; other attributes are refused."""
        texts = []
        for index, item in enumerate(attributes):
            extra = sorted(set(item) - {PROMPT_ATTRIBUTE})
            if extra:
                raise ValueError(
                    f"prompt {index} has attribute(s) {extra}; a {self.pipeline_class} takes only "
                    f"{PROMPT_ATTRIBUTE!r}"
                )
            text = item.get(PROMPT_ATTRIBUTE)
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"prompt {index} needs a non-empty {PROMPT_ATTRIBUTE!r} string, got {text!r}")
            texts.append(text)
        return texts

    @staticmethod
    def negative_texts(params: PipelineParams, batch: int) -> list[str] | None:
        """One negative prompt per prompt (a string is used for all); it needs guidance (``cfg_coef > 1``)."""
        negative_prompt = params.negative_prompt
        if negative_prompt is None:
            return None
        if not params.uses_cfg:
            raise ValueError(
                f"negative_prompt needs classifier-free guidance (cfg_coef > 1); got cfg_coef={params.cfg_coef}"
            )
        if isinstance(negative_prompt, str):
            return [negative_prompt] * batch
        texts = list(negative_prompt)
        if len(texts) != batch:
            raise ValueError(f"negative_prompt has {len(texts)} entries for {batch} prompt(s); give one per prompt")
        return texts

    # ---------------------------------------------------------------- generation
    @torch.no_grad()
    def generate_audio(
        self,
        attributes: list[dict[str, Any]],
        duration: float,
        params: PipelineParams,
        *,
        seed: int | None = None,
        progress: bool = False,
        callback: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Waveform ``[B, C, N]`` float32, ``N = round(duration * sample_rate)``, one per prompt.

        The pipeline is called with the descriptions, ``num_inference_steps=steps``, ``guidance_scale=cfg_coef``,
        the negative prompts and ``torch.Generator("cpu").manual_seed(seed)`` (noise drawn on the CPU, so a seed
        gives the same noise on every device). Its length argument is ``duration`` when the pipeline returns
        ``N`` samples for it; otherwise (the pipelines truncate: the mel pipelines to whole mel frames, all to whole
        samples) the next length that gives them, and the audio is trimmed to ``N``. The mel pipelines (AudioLDM,
        AudioLDM 2, MusicLDM) return ``[B, N]``, Stable Audio ``[B, C, N]``.
        """
        texts = self.prompt_texts(attributes)
        negatives = self.negative_texts(params, len(texts))
        samples = self.check_duration(duration)
        generator = torch.Generator("cpu").manual_seed(int(seed)) if seed is not None else None
        self.pipeline.set_progress_bar_config(disable=not progress)
        output = self.pipeline(
            texts,
            **{self.spec.length_argument: self.spec.request_seconds(self.pipeline, duration, samples)},
            num_inference_steps=params.steps,
            guidance_scale=params.cfg_coef,
            negative_prompt=negatives,
            generator=generator,
            callback=self._step_callback(callback, params.steps),
            callback_steps=1,
            output_type="pt",
        )
        return self._checked_audio(output.audios, samples)

    @staticmethod
    def _step_callback(
        callback: Callable[[int, int], None] | None, total: int
    ) -> Callable[[int, Any, torch.Tensor], None] | None:
        """The pipeline's ``callback(step_index, timestep, latents)`` as tokenlm's ``callback(done, total)``."""
        if callback is None:
            return None

        def step_done(step: int, timestep: Any, latents: torch.Tensor) -> None:
            callback(step + 1, total)

        return step_done

    def _checked_audio(self, audios: torch.Tensor, samples: int) -> torch.Tensor:
        """The pipeline's audio (``[B, N]`` mono or ``[B, C, N]``) as ``[B, C, samples]`` float32."""
        wav = audios if audios.dim() == 3 else audios[:, None]  # [B, C, N]
        if wav.shape[1] != self.channels or wav.shape[-1] < samples:
            raise RuntimeError(
                f"the {self.pipeline_class} returned audio of shape {tuple(audios.shape)}; expected {self.channels} "
                f"channel(s) and at least {samples} samples"
            )
        return wav[..., :samples].float()

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the pipeline as a diffusers folder (``model_index.json`` and one folder per component)."""
        directory = Path(directory)
        self.pipeline.save_pretrained(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> DiffusersBackend:
        """Load a local diffusers folder of a supported pipeline (``local_files_only``: nothing is downloaded)."""
        backend = cls(load_pipeline(directory)).eval()
        return backend.to(device) if device is not None else backend

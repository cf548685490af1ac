"""The user API: ``TextToAudio.from_pretrained(dir).generate(prompts, duration) -> Audio``."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conditioners.base import AudioValue
from tokenlm.audio import (
    DEFAULT_LOUDNESS_DB,
    DEFAULT_NORMALIZE,
    DEFAULT_RMS_DB,
    audio_format,
    batch_audio,
    check_level_target,
    check_normalize,
    level_audio,
    read_audio,
    write_audio,
)
from tokenlm.backends import get_backend_class
from tokenlm.common.backend import Backend
from tokenlm.common.checkpoint import CONFIG_NAME, CheckpointError, read_config
from tokenlm.common.device import check_dtype
from tokenlm.defaults import default_model_path, is_default_name, restore_hint

Prompt = str | dict[str, Any]
#: a melody: a file path, a ``[N]`` / ``[C, N]`` / ``[B, C, N]`` tensor or array, or an :class:`Audio`
Melody = Any
#: a melody quieter than this peak (-80 dBFS) is silent: it has no pitch to follow
SILENT_PEAK = 1e-4
#: seconds of audio per chunk of TextToAudio.stream
DEFAULT_CHUNK_SECONDS = 0.5


def _take(pieces: list[torch.Tensor], count: int) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """The first ``count`` samples of ``pieces`` (``[B, C, n]`` each, in order), the pieces left and their length."""
    joined = torch.cat(pieces, dim=-1)
    return joined[..., :count], [joined[..., count:]], joined.shape[-1] - count


@dataclass
class Audio:
    """Generated audio.

    Attributes:
        wav: ``[B, C, N]`` float32, full scale at +-1 (as the model made it: not normalised).
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

    def save(
        self,
        path: str | Path,
        normalize: str = DEFAULT_NORMALIZE,
        subtype: str | None = None,
        *,
        loudness_db: float = DEFAULT_LOUDNESS_DB,
        rms_db: float = DEFAULT_RMS_DB,
    ) -> list[Path]:
        """Write one file per item: ``path`` itself for one item, ``stem_0.wav``, ``stem_1.wav``... for more.

        By default (``normalize="clip"``) the files keep the level the model made: the only change is that audio
        whose peak would pass full scale is scaled down as a whole (one gain for the whole batch, so the clips keep
        their relative levels), with a :class:`tokenlm.audio.LevelWarning`. ``"none"`` writes the samples as they
        are; ``"peak"`` (-1 dBFS), ``"rms"`` (``rms_db`` dBFS RMS) and ``"loudness"`` (``loudness_db`` LUFS,
        default -14) set each file's level on its own, keeping peaks at or below -1 dBFS. ``subtype`` is the sample
        encoding (``PCM_16`` by default for wav / flac, ``PCM_24``, ``FLOAT``: float32 bit for bit); see
        :func:`tokenlm.audio.write_audio`. Options are checked before any file is written.
        """
        path = Path(path)
        numbered = [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(len(self))]
        paths = [path] if len(self) == 1 else numbered
        check_normalize(normalize)
        audio_format(path, subtype)
        check_level_target(loudness_db, "loudness_db")
        check_level_target(rms_db, "rms_db")
        wav = self.wav  # [B, C, N]
        if normalize == "clip":  # one gain for the batch (a no-op unless something would clip)
            label = f"'{paths[0]}'" if len(paths) == 1 else f"the batch '{paths[0]}' ... '{paths[-1]}'"
            items = list(level_audio(wav, self.sample_rate, "clip", name=label))  # B x [C, N]
        else:  # each file on its own; all levels are set (or refused) before any file is written
            items = [level_audio(item, self.sample_rate, normalize, loudness_db=loudness_db, rms_db=rms_db,
                                 name=f"'{item_path}'") for item_path, item in zip(paths, wav, strict=True)]
        return [write_audio(item_path, item, self.sample_rate, normalize="none", subtype=subtype)
                for item_path, item in zip(paths, items, strict=True)]


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


def _melody_items(melody: Melody, sample_rate: int | None) -> list[tuple[Any, int | None, str]]:
    """A ``melody=`` argument as ``(source, rate, name)`` items: a list gives one each (``None``: no melody for that
    prompt), an :class:`Audio` or a ``[B, C, N]`` tensor one per row, anything else one."""
    if isinstance(melody, (list, tuple)):
        if not melody:
            raise ValueError("melody is an empty list; give one melody for every prompt, or one for all")
        items: list[tuple[Any, int | None, str]] = []
        for i, item in enumerate(melody):
            if item is None:
                items.append((None, None, f"melody {i}"))
                continue
            items += [(src, rate, f"melody {i}") for src, rate, _ in _melody_items(item, sample_rate)]
        return items
    if isinstance(melody, Audio):
        return [(row, melody.sample_rate, f"melody {i}") for i, row in enumerate(melody.wav)]
    if isinstance(melody, np.ndarray):
        melody = torch.from_numpy(np.ascontiguousarray(melody))
    if isinstance(melody, torch.Tensor):
        if melody.dim() == 1:
            melody = melody[None]  # [1, N]
        if melody.dim() == 3:
            return [(row, sample_rate, f"melody {i}") for i, row in enumerate(melody)]
        return [(melody, sample_rate, "melody")]
    if isinstance(melody, (str, Path)):
        return [(melody, None, f"melody {str(melody)!r}")]
    raise ValueError(
        f"melody must be a file path, a [N] / [C, N] / [B, C, N] tensor or array, an Audio, or a list of them "
        f"(None for a prompt without one); got {type(melody).__name__}"
    )


def _melody_value(source: Any, rate: int | None, name: str, duration: float) -> AudioValue:
    """One melody read (a path) or taken as it is, checked: readable, not empty, finite, not silent."""
    import warnings

    if isinstance(source, (str, Path)):
        try:
            wav, rate = read_audio(source)  # [C, N]
        except (OSError, RuntimeError, ValueError) as err:
            raise ValueError(f"{name} cannot be read as audio: {err}") from err
    else:
        if rate is None:
            raise ValueError(f"{name} is a tensor or array: pass its sample rate as melody_sample_rate")
        if isinstance(rate, bool) or not isinstance(rate, numbers.Integral) or rate <= 0:
            raise ValueError(f"melody_sample_rate must be a positive int, got {rate!r}")
        if not source.is_floating_point():
            raise ValueError(f"{name} must hold float samples (full scale 1.0), got dtype {source.dtype}")
        wav, rate = source.float(), int(rate)
    if wav.dim() != 2 or wav.shape[-1] == 0 or wav.shape[0] == 0:
        raise ValueError(f"{name} is empty or not [C, N] audio (shape {tuple(wav.shape)})")
    if not bool(torch.isfinite(wav).all()):
        raise ValueError(f"{name} holds NaN or infinite samples")
    if float(wav.abs().max()) < SILENT_PEAK:
        raise ValueError(f"{name} is silent (peak below -80 dBFS): there is no melody to follow")
    if wav.shape[-1] > round(duration * rate):
        warnings.warn(f"{name} lasts {wav.shape[-1] / rate:.2f} s, longer than the {duration:g} s asked for: the "
                      f"audio follows its first {duration:g} s", UserWarning, stacklevel=4)
    return AudioValue(wav.contiguous(), int(rate))


def melody_values(melody: Melody, sample_rate: int | None, batch: int, duration: float) -> list[AudioValue | None]:
    """The melodies of ``generate(melody=...)``, one :class:`AudioValue` (or None) per prompt.

    One melody serves every prompt; otherwise a list holds one per prompt (``None``: that prompt has none). Each is
    read (a path) or taken as it is (tensors and arrays at ``sample_rate``, an :class:`Audio` at its own rate) and
    refused with one line when it is unreadable, empty, not finite or silent. A melody longer than ``duration``
    gets a warning: the audio follows its beginning. It is not cut there: as in MusicGen-Melody, the chroma covers
    the model's window (its conditioner keeps ``chunk_length`` seconds), and audio longer than the window follows
    the melody on, window by window.
    """
    items = _melody_items(melody, sample_rate)
    if len(items) not in (1, batch):
        raise ValueError(f"got {len(items)} melodies for {batch} prompts; give one melody for every prompt, or one "
                         "for all")
    if all(source is None for source, _, _ in items):
        raise ValueError("melody holds only None: give at least one melody, or leave melody= out")
    values = [None if source is None else _melody_value(source, rate, name, duration) for source, rate, name in items]
    return values * batch if len(values) == 1 else values


def _check_duration(duration: object) -> float:
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration):
        raise ValueError(f"duration must be a finite number of seconds, got {duration!r}")
    if duration <= 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
    return float(duration)


#: seeds a torch generator takes: 0 ... 2**64 - 1
MAX_SEED = 2**64 - 1


def _check_seed(seed: object) -> int | None:
    """``seed`` as an int, or None; anything else is a ValueError naming it."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**64 - 1] or None, got {seed!r}")
    return int(seed)


def _check_extend_stride(extend_stride: object) -> float | None:
    """``extend_stride`` as float seconds, or None (the backend checks it against its window)."""
    if extend_stride is None:
        return None
    if (isinstance(extend_stride, bool) or not isinstance(extend_stride, numbers.Real)
            or not math.isfinite(extend_stride) or extend_stride <= 0):
        raise ValueError(f"extend_stride must be a positive number of seconds or None, got {extend_stride!r}")
    return float(extend_stride)


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
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype = "auto"
    ) -> TextToAudio:
        """Load a tokenlm checkpoint folder, or convert on the fly a transformers MusicGen folder or an audiocraft
        MusicGen / AudioGen release (its T5 and, for ``{"pretrained": ...}`` codecs, its EnCodec come from the local
        Hugging Face cache; ``tokenlm convert audiocraft --t5 --encodec`` takes explicit folders), or run a local
        diffusers AudioLDM / AudioLDM 2 / MusicLDM / Stable Audio pipeline folder with the ``diffusers`` backend.
        ``"default"`` (the token LM) and ``"default-ldm"`` (latent diffusion) are the models shipped in the package
        (see ``tokenlm.defaults``).

        ``dtype`` is the inference dtype of the generator network (the LM or the DiT): ``"auto"`` (bf16 weights on a
        CPU with native bf16 (AVX-512 BF16 or AMX), bf16 autocast on CUDA, float32 elsewhere), ``"float32"`` or
        ``"bfloat16"``. Sampling stays in float32; diffusers pipelines run in float32."""
        dtype = check_dtype(dtype)
        if is_default_name(path) and not Path(path).exists():
            return cls._load_default(str(path), device, dtype)
        if not isinstance(path, (str, Path)) or not str(path) or "\x00" in str(path):
            raise FileNotFoundError(f"model path must name a folder (or 'default' / 'default-ldm'), got {path!r}")
        path = Path(path)
        try:
            return cls._load_folder(path, device, dtype)
        except (CheckpointError, FileNotFoundError):
            raise
        except Exception as error:  # a config or weights the backends cannot build a model from
            reason = f"missing key {error.args[0]!r}" if isinstance(error, KeyError) else f"{error}"
            raise CheckpointError(
                f"{str(path)!r} could not be loaded: {reason} ({type(error).__name__}; is its {CONFIG_NAME} from "
                "this version of tokenlm and unedited?)"
            ) from error

    @classmethod
    def _load_folder(cls, path: Path, device: str | torch.device | None, dtype: str = "auto") -> TextToAudio:
        """What :meth:`from_pretrained` loads from a folder (a default name already resolved)."""
        if (path / "model_index.json").is_file():  # a diffusers pipeline folder
            if dtype == "bfloat16":
                raise ValueError(f"dtype='bfloat16' is for tokenlm's lm and ldm backends; the diffusers pipeline in "
                                 f"{str(path)!r} runs in float32 (use dtype 'auto' or 'float32')")
            return cls(get_backend_class("diffusers").from_pretrained(path, device=device))
        if (path / "state_dict.bin").is_file() and not (path / "config.json").exists():  # an audiocraft release
            from tokenlm.convert.audiocraft_lm import load_audiocraft

            return cls(load_audiocraft(path, device=device).set_dtype(dtype))
        if path.is_dir() and not (path / "config.json").exists():
            raise CheckpointError(
                f"{str(path)!r} is not a checkpoint folder: it has no config.json (tokenlm loads a tokenlm checkpoint "
                "or a transformers MusicGen folder (config.json), an audiocraft release (state_dict.bin + "
                "compression_state_dict.bin) or a diffusers AudioLDM / AudioLDM 2 / MusicLDM / Stable Audio folder "
                "(model_index.json))"
            )
        config = read_config(path)
        if str(config.get("model_type", "")).startswith("musicgen"):  # MusicGen (Melody is refused there)
            from tokenlm.convert.musicgen_hf import load_musicgen_hf

            backend = load_musicgen_hf(path)
            return cls((backend.to(device) if device is not None else backend).set_dtype(dtype))
        backend_class = get_backend_class(str(config.get("backend", "lm")))
        if isinstance(backend_class, type) and issubclass(backend_class, Backend):
            return cls(backend_class.from_pretrained(path, device=device, dtype=dtype))
        if dtype == "bfloat16":  # a plugin backend of its own kind decides its precision itself
            raise ValueError(f"dtype='bfloat16' is for tokenlm's lm and ldm backends, not {config.get('backend')!r}")
        return cls(backend_class.from_pretrained(path, device=device))

    @classmethod
    def _load_default(cls, name: str, device: str | torch.device | None, dtype: str = "auto") -> TextToAudio:
        """A shipped default model; a damaged asset is named with how to restore it."""
        directory = default_model_path(name)
        try:
            return cls.from_pretrained(directory, device=device, dtype=dtype)
        except (CheckpointError, OSError, ValueError, KeyError, RuntimeError) as error:
            raise CheckpointError(
                f"the shipped default model {name!r} in {str(directory)!r} could not be loaded: {error}; "
                f"to restore it, {restore_hint(name)}"
            ) from error

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

    def melody_attribute(self) -> str:
        """The attribute read by this model's chroma conditioner (what ``melody=`` feeds); ValueError naming the
        models that take a melody when it has none."""
        conditioners = getattr(self.backend.conditioning, "conditioners", {})
        names = [name for name, conditioner in conditioners.items() if getattr(conditioner, "kind", "") == "chroma"]
        if not names:
            raise ValueError(
                "this model takes no melody: melody= needs a model with a chroma conditioner (a MusicGen-Melody "
                "folder from transformers or its `tokenlm convert musicgen-hf` checkpoint, or a model trained with "
                f"a `chroma` conditioner); its conditioners read {self.attributes}"
            )
        return names[0]

    def generate(
        self,
        prompts: Prompt | Sequence[Prompt],
        duration: float,
        *,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        cfg_coef: float | None = None,
        two_step_cfg: bool | None = None,
        steps: int | None = None,
        cfg_rescale: float | None = None,
        scheduler: str | None = None,
        seed: int | None = None,
        progress: bool = False,
        callback: Callable[[int, int], None] | None = None,
        return_codes: bool = False,
        prompt_audio: torch.Tensor | str | Path | None = None,
        prompt_sample_rate: int | None = None,
        extend_stride: float | None = None,
        negative_prompt: str | list[str] | None = None,
        melody: Melody | None = None,
        melody_sample_rate: int | None = None,
    ) -> Audio:
        """Generate ``duration`` seconds of audio for each prompt.

        Sampling arguments left as None take the backend's defaults; an argument of the other backend is an
        error (``backend.sampling_parameters`` lists the ones a backend takes).

        Args:
            prompts: a description, an attribute dict (``{"description": ..., "genre": ...}``), or a list.
            duration: seconds of audio per prompt (longer than the model's window is generated by windows).
            top_k, top_p, temperature: token sampling (LM; defaults 250, 0, 1); ``temperature=0`` is greedy.
            cfg_coef: classifier-free guidance strength (1 = none; default 3 for the LM, 5 for diffusion).
            two_step_cfg: LM only, conditional and unconditional passes run separately.
            steps, cfg_rescale, scheduler: diffusion only (defaults 50, 0.75, ``ddim``; or ``dpmpp``).
                A diffusers pipeline takes ``steps`` and ``cfg_coef`` only, defaulting to the pipeline's own.
            seed: makes the output reproducible.
            prompt_audio: audio to continue (LM), ``[C, N]`` / ``[B, C, N]`` tensor at ``prompt_sample_rate``,
                or a file path; the output starts with it.
            extend_stride: seconds the window advances when ``duration`` exceeds the model's window (LM).
            negative_prompt: what guidance steers away from, one string for every prompt or one per prompt; a
                sampling argument of the ``diffusers`` backend (needs ``cfg_coef > 1``).
            melody: a tune to follow, in the timbre the text asks for (models with a chroma conditioner, such as
                MusicGen-Melody): a file path, a ``[N]`` / ``[C, N]`` tensor or array at ``melody_sample_rate``, an
                :class:`Audio`, or a list with one per prompt (None: none for that prompt). Longer than
                ``duration``, a warning says the audio follows its beginning; longer than the model's window, later
                windows follow it on.
        Returns:
            :class:`Audio` with ``wav`` ``[B, C, N]``, N = duration x sample rate.
        """
        attributes, duration, seed, params = self._request(
            prompts, duration, seed, melody, melody_sample_rate, top_k=top_k, top_p=top_p, temperature=temperature,
            cfg_coef=cfg_coef, two_step_cfg=two_step_cfg, steps=steps, cfg_rescale=cfg_rescale, scheduler=scheduler,
            negative_prompt=negative_prompt,
        )
        backend = self.backend
        if not hasattr(backend, "generate_tokens"):  # a backend that makes audio directly (diffusion)
            self._refuse_token_options(return_codes=return_codes, prompt_audio=prompt_audio,
                                       extend_stride=extend_stride)
            wav = backend.generate_audio(
                attributes, duration, params, seed=seed, progress=progress, callback=callback
            )
            return Audio(wav.cpu(), self.sample_rate)
        extend_stride = _check_extend_stride(extend_stride)
        prompt = self._prompt_codes(prompt_audio, prompt_sample_rate, len(attributes), duration)
        codes = backend.generate_tokens(
            attributes, duration, params, prompt=prompt, extend_stride=extend_stride, seed=seed,
            progress=progress, callback=callback,
        )
        wav = backend.decode(codes)[..., : round(duration * self.sample_rate)].cpu()
        return Audio(wav, self.sample_rate, codes.cpu() if return_codes else None)

    def stream(
        self,
        prompts: Prompt | Sequence[Prompt],
        duration: float,
        *,
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        cfg_coef: float | None = None,
        two_step_cfg: bool | None = None,
        steps: int | None = None,
        cfg_rescale: float | None = None,
        scheduler: str | None = None,
        seed: int | None = None,
        prompt_audio: torch.Tensor | str | Path | None = None,
        prompt_sample_rate: int | None = None,
        extend_stride: float | None = None,
        negative_prompt: str | list[str] | None = None,
        melody: Melody | None = None,
        melody_sample_rate: int | None = None,
    ) -> Iterator[Audio]:
        """:meth:`generate`, heard while it is written: yields :class:`Audio` chunks of ``chunk_seconds`` (the last
        one shorter) as soon as the model has made them, with the same arguments, defaults and seeds.

        A token LM decodes its codes as frames complete (:class:`~tokenlm.codecs.streaming.StreamingDecoder`): the
        chunks joined equal :meth:`generate`'s audio for the same seed, to float rounding with a float32 codec
        decoder (below -100 dB of the signal for the shipped codec) and to bf16 rounding with the bf16 decoder a
        native-bf16 CPU gets by default (about -46 dB: the same order as bf16's own error against float32). Audio
        longer than the window streams on, window by window. A diffusion model cannot stream: it yields once, the
        whole audio, when it is done.

        Everything is checked before the first chunk. Closing the iterator (``break``, ``close()``) stops the
        generation.

        Args:
            chunk_seconds: seconds per chunk (> 0, at least one codec frame).
            the rest: as :meth:`generate` (no ``progress`` bar, ``callback`` or ``return_codes``).
        """
        attributes, duration, seed, params = self._request(
            prompts, duration, seed, melody, melody_sample_rate, top_k=top_k, top_p=top_p, temperature=temperature,
            cfg_coef=cfg_coef, two_step_cfg=two_step_cfg, steps=steps, cfg_rescale=cfg_rescale, scheduler=scheduler,
            negative_prompt=negative_prompt,
        )
        chunk = self._chunk_samples(chunk_seconds)
        backend = self.backend
        total = round(duration * self.sample_rate)
        if not hasattr(backend, "generate_tokens"):
            self._refuse_token_options(prompt_audio=prompt_audio, extend_stride=extend_stride)
            return self._stream_once(backend, attributes, duration, params, seed)
        extend_stride = _check_extend_stride(extend_stride)
        prompt = self._prompt_codes(prompt_audio, prompt_sample_rate, len(attributes), duration)
        frames = backend.stream_tokens(attributes, duration, params, prompt=prompt, extend_stride=extend_stride,
                                       seed=seed)
        return self._stream_audio(frames, chunk, total)

    def _stream_once(self, backend: Any, attributes: list[dict[str, Any]], duration: float, params: Any,
                     seed: int | None) -> Iterator[Audio]:
        yield Audio(backend.generate_audio(attributes, duration, params, seed=seed).cpu(), self.sample_rate)

    def _stream_audio(self, frames: Iterator[torch.Tensor], chunk: int, total: int) -> Iterator[Audio]:
        """Codes as they complete -> audio chunks of ``chunk`` samples, ``total`` samples in all."""
        from tokenlm.codecs.streaming import StreamingDecoder

        codec = self.backend.codec
        decoder = StreamingDecoder(codec, min_frames=math.ceil(chunk * codec.frame_rate / codec.sample_rate))
        pending: list[torch.Tensor] = []  # decoded samples not yet given, [B, C, n] each
        held = given = 0
        try:
            for codes in frames:
                piece = decoder.push(codes)
                pending.append(piece)
                held += piece.shape[-1]
                while held >= chunk and given + chunk <= total:
                    out, pending, held = _take(pending, chunk)
                    given += chunk
                    yield Audio(out, self.sample_rate)
            pending.append(decoder.finish())
            rest = torch.cat(pending, dim=-1)[..., : total - given]
            for start in range(0, rest.shape[-1], chunk):
                yield Audio(rest[..., start: start + chunk], self.sample_rate)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # stops the generation when the caller stops listening

    def _chunk_samples(self, chunk_seconds: object) -> int:
        """``chunk_seconds`` as samples; ValueError unless it is > 0 and at least one codec frame."""
        if isinstance(chunk_seconds, bool) or not isinstance(chunk_seconds, (int, float)) or not math.isfinite(
                chunk_seconds) or chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be a number of seconds > 0, got {chunk_seconds!r}")
        frame = 1.0 / float(self.backend.frame_rate)
        if chunk_seconds < frame - 1e-9:
            raise ValueError(f"chunk_seconds ({chunk_seconds:g} s) is shorter than one codec frame ({frame:g} s)")
        return max(1, round(chunk_seconds * self.sample_rate))

    def _request(self, prompts: Prompt | Sequence[Prompt], duration: object, seed: object, melody: Melody | None,
                 melody_sample_rate: int | None, **given: Any) -> tuple[list[dict[str, Any]], float, int | None, Any]:
        """The checked attributes (melodies added), duration, seed and sampling parameters of a request."""
        attributes = normalize_prompts(prompts)
        duration = _check_duration(duration)
        seed = _check_seed(seed)
        if melody is not None:
            name = self.melody_attribute()
            for item, value in zip(attributes, melody_values(melody, melody_sample_rate, len(attributes), duration),
                                   strict=True):
                if value is not None:
                    item[name] = value
        elif melody_sample_rate is not None:
            raise ValueError("melody_sample_rate goes with melody=; no melody was given")
        params = self._sampling({name: value for name, value in given.items() if value is not None})
        return attributes, duration, seed, params

    def _refuse_token_options(self, **options: Any) -> None:
        """ValueError for an option only token backends take, given to a backend that makes audio directly."""
        for name, value in options.items():
            if value is not None and value is not False:
                raise ValueError(
                    f"{name} belongs to token backends; the {self.backend.name!r} backend does not take it "
                    "(to edit audio with diffusion use TextToAudio.edit)"
                )

    def edit(
        self,
        prompts: Prompt | Sequence[Prompt],
        audio: torch.Tensor | str | Path,
        *,
        mode: str = "style",
        sample_rate: int | None = None,
        strength: float | None = None,
        mask: tuple[float, float] | Sequence[tuple[float, float]] | None = None,
        cutoff_hz: float | None = None,
        steps: int | None = None,
        cfg_coef: float | None = None,
        cfg_rescale: float | None = None,
        scheduler: str | None = None,
        seed: int | None = None,
    ) -> Audio:
        """Zero-shot editing of ``audio`` with a diffusion model.

        Args:
            prompts: the target description(s), as for :meth:`generate`.
            audio: a file path, or a ``[C, N]`` / ``[B, C, N]`` tensor at ``sample_rate``; other rates and
                channel counts are converted; at most the model's window long.
            mode: ``style`` (SDEdit: noise to ``strength``, denoise with the new prompt), ``inpaint``
                (regenerate the ``mask`` span(s) ``(start, end)`` in seconds, keep the rest exactly) or
                ``superres`` (keep the input below ``cutoff_hz``, default half its sample rate, generate above).
            strength: in [0, 1] for ``style`` / ``superres`` (default 0.6; 1 ignores the input).
            steps, cfg_coef, cfg_rescale, scheduler, seed: as for :meth:`generate`.
        Returns:
            :class:`Audio` ``[B, C, N]`` at the model's rate, as long as the input.
        """
        backend = self.backend
        if not hasattr(backend, "sample_latents"):
            raise ValueError(f"editing needs a diffusion model (backend 'ldm'); this one is {backend.name!r}")
        from tokenlm.ldm.editing import edit

        attributes = normalize_prompts(prompts)
        seed = _check_seed(seed)
        given = dict(steps=steps, cfg_coef=cfg_coef, cfg_rescale=cfg_rescale, scheduler=scheduler)
        params = self._sampling({name: value for name, value in given.items() if value is not None})
        wav = edit(backend, attributes, audio, mode=mode, params=params, sample_rate=sample_rate, strength=strength,
                   mask=mask, cutoff_hz=cutoff_hz, seed=seed)
        return Audio(wav.cpu(), self.sample_rate)

    def _sampling(self, given: dict[str, Any]) -> Any:
        """The backend's sampling parameters from the ones the user gave; another backend's are refused."""
        backend = self.backend
        allowed = tuple(backend.sampling_parameters)
        foreign = [name for name in given if name not in allowed]
        if foreign:
            raise ValueError(
                f"sampling argument(s) {foreign} do not apply to the {backend.name!r} backend of this model; "
                f"it takes {', '.join(allowed)}"
            )
        return backend.make_sampling(given)

    def _prompt_codes(
        self, prompt_audio: torch.Tensor | str | Path | None, sample_rate: int | None, batch: int, duration: float
    ) -> torch.Tensor | None:
        """The codes of the audio to continue (``None`` without one); it must be shorter than ``duration``."""
        if prompt_audio is None:
            return None
        backend = self.backend
        wav, _ = batch_audio(prompt_audio, sample_rate, backend.sample_rate, backend.channels, batch,
                             max_seconds=duration, too_long="the audio prompt ({seconds:.2f} s) must be shorter "
                             "than the requested duration ({limit:g} s)")
        return backend.encode_audio(wav)

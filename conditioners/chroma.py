"""Chroma conditioner (MusicGen-Melody): a reference melody's pitch classes, frame by frame, as condition tokens.

A melody (an :class:`~conditioners.base.AudioValue`) becomes features exactly as transformers'
``MusicgenMelodyFeatureExtractor`` computes them from a waveform:

1. mixed to mono, resampled to ``sample_rate`` (32 kHz), the batch zero-padded to its longest melody and cut at
   ``chunk_length`` seconds;
2. a power spectrogram (Hann window of ``n_fft`` = 16384, hop 4096, centred with reflection, divided by the
   window's energy), melodies shorter than one window zero-padded around it first;
3. projected onto 12 pitch classes by librosa's chroma filter bank (``transformers.audio_utils``), normalised by
   each frame's maximum, and by default reduced to a one-hot of the strongest class (``argmax``).

:meth:`ChromaConditioner.forward` projects each frame to the model width (a linear layer with bias, transformers'
``audio_enc_to_dec_proj``), then repeats the frames until ``chroma_length`` and cuts there: a short melody loops
over the whole window, as in MusicGen-Melody. The model reads them as prepended tokens (route ``prepend``).

The null value is MusicGen-Melody's, not zeros: "no melody" is the chroma of silence, every frame on C (class 0),
projected like any other; its mask is valid. A model converted from transformers therefore guides exactly as it
does, and one trained here learns "no melody" from the same input. ``null_chroma="silence"`` instead takes the
chroma the analysis itself gives a silent waveform, as audiocraft does: the same one-hot C with ``argmax``, all-zero
frames (only the projection's bias left) without it.

audiocraft separates the melody stems with Demucs before the chroma. No Demucs weights are available offline, so
the whole mix is used, as transformers does when it is given a waveform.

Example:
    >>> chroma = ChromaConditioner("melody", 64)
    >>> wav = torch.sin(2 * torch.pi * 440.0 * torch.arange(32000) / 32000)[None]  # 1 s of A
    >>> condition = chroma.encode([AudioValue(wav, 32000)])
    >>> condition.embeds.shape, chroma.features([AudioValue(wav, 32000)])["chroma"][0].argmax(-1)[0].item()
    (torch.Size([1, 235, 64]), 9)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from conditioners.base import AudioValue, Condition, Conditioner

#: pitch-class names of the 12 chroma bins, from C
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: what "no melody" is: ``one_hot_c`` (class C in every frame, transformers' MusicGen-Melody, whatever ``argmax``
#: says) or ``silence`` (the chroma of a silent waveform: one-hot C with ``argmax``, zeros without; audiocraft's)
NULL_CHROMA = ("one_hot_c", "silence")


class ChromaConditioner(Conditioner):
    """A melody waveform -> ``[B, chroma_length, output_dim]`` condition tokens (see the module docstring).

    Args:
        attribute: the attribute holding the melody (tokenlm's API passes ``melody=`` as ``"melody"``).
        output_dim: the model width.
        sample_rate, n_fft, hop_length: the chroma analysis (MusicGen-Melody: 32 kHz, 16384, 4096).
        chunk_length: seconds of melody kept at most (30).
        num_chroma: pitch classes (12).
        chroma_length: frames the condition always has; the melody's frames are repeated and cut to it (235).
        argmax: one-hot of the strongest class per frame (MusicGen-Melody); False keeps the normalised chroma.
        null_chroma: the chroma of "no melody", one of :data:`NULL_CHROMA` (they differ only without ``argmax``).
    """

    kind = "chroma"
    value_types = (AudioValue,)
    time_aligned = True

    def __init__(
        self,
        attribute: str,
        output_dim: int,
        sample_rate: int = 32000,
        n_fft: int = 16384,
        hop_length: int = 4096,
        chunk_length: float = 30.0,
        num_chroma: int = 12,
        chroma_length: int = 235,
        argmax: bool = True,
        null_chroma: str = "one_hot_c",
    ) -> None:
        super().__init__(attribute, output_dim)
        for name, value in (("sample_rate", sample_rate), ("n_fft", n_fft), ("hop_length", hop_length),
                            ("num_chroma", num_chroma), ("chroma_length", chroma_length)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"ChromaConditioner {name} must be a positive whole number, got {value!r}")
        if null_chroma not in NULL_CHROMA:
            raise ValueError(f"ChromaConditioner null_chroma {null_chroma!r} unknown; choose one of {NULL_CHROMA}")
        if not chunk_length > 0:
            raise ValueError(f"ChromaConditioner chunk_length must be > 0 seconds, got {chunk_length!r}")
        self.sample_rate, self.n_fft, self.hop_length = int(sample_rate), int(n_fft), int(hop_length)
        self.chunk_length, self.num_chroma = float(chunk_length), int(num_chroma)
        self.chroma_length, self.argmax = int(chroma_length), bool(argmax)
        self.null_chroma = null_chroma
        self.proj = nn.Linear(self.num_chroma, output_dim)  # transformers' audio_enc_to_dec_proj
        self._filters: torch.Tensor | None = None  # [num_chroma, n_fft // 2 + 1], built on first use

    # ------------------------------------------------------------------ features
    def filters(self) -> torch.Tensor:
        """The chroma filter bank ``[num_chroma, n_fft // 2 + 1]`` (librosa's, through transformers)."""
        if self._filters is None:
            from transformers.audio_utils import chroma_filter_bank

            bank = chroma_filter_bank(num_frequency_bins=self.n_fft, num_chroma=self.num_chroma,
                                      sampling_rate=self.sample_rate, tuning=0)
            self._filters = torch.from_numpy(bank).float()
        return self._filters

    def _mono(self, value: AudioValue) -> torch.Tensor:
        """``[N]`` float32 mono waveform at :attr:`sample_rate`."""
        wav = value.wav.detach().float().cpu().mean(dim=0)  # [N]
        if value.sample_rate != self.sample_rate:
            import julius

            wav = julius.resample_frac(wav, value.sample_rate, self.sample_rate)
        return wav

    def chroma(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` waveforms at :attr:`sample_rate` -> ``[B, T, num_chroma]`` chroma (one-hot with ``argmax``)."""
        if wav.shape[-1] < self.n_fft:  # one window at least, centred in zeros
            pad = self.n_fft - wav.shape[-1]
            wav = nn.functional.pad(wav, (pad // 2, pad - pad // 2))
        window = torch.hann_window(self.n_fft, dtype=wav.dtype)
        spec = torch.stft(wav, self.n_fft, self.hop_length, window=window, center=True, pad_mode="reflect",
                          return_complex=True)  # [B, F, T]
        power = spec.abs().pow(2) / window.pow(2).sum()  # torchaudio's normalized=True, power 2
        raw = torch.einsum("cf,bft->bct", self.filters(), power)  # [B, C, T]
        chroma = nn.functional.normalize(raw, p=float("inf"), dim=1, eps=1e-6).transpose(1, 2)  # [B, T, C]
        if not self.argmax:
            return chroma
        return nn.functional.one_hot(chroma.argmax(-1), self.num_chroma).to(chroma.dtype)

    def _null_rows(self, batch: int, frames: int) -> torch.Tensor:
        """``[batch, frames, num_chroma]`` chroma of "no melody" (see :data:`NULL_CHROMA`)."""
        chroma = torch.zeros(batch, frames, self.num_chroma)
        if self.argmax or self.null_chroma == "one_hot_c":
            chroma[..., 0] = 1.0  # silence's strongest class is C (all tie at zero)
        return chroma

    def features(self, values: list[Any]) -> dict[str, Any]:
        """The chroma of a batch of melodies: ``chroma`` ``[B, T, num_chroma]`` (null rows: see
        :data:`NULL_CHROMA`) and ``null`` ``[B]`` bool."""
        null = torch.tensor([value is None for value in values], dtype=torch.bool)
        melodies = [self._mono(value) for value in values if value is not None]
        if not melodies:
            return {"chroma": self._null_rows(len(values), 1), "null": null}
        limit = round(self.chunk_length * self.sample_rate)
        longest = min(max(m.shape[0] for m in melodies), limit)
        batch = torch.stack([nn.functional.pad(m[:longest], (0, longest - min(m.shape[0], longest)))
                             for m in melodies])  # [n, N]: zero-padded to the longest, like the feature extractor
        found = self.chroma(batch)  # [n, T, C]
        chroma = self._null_rows(len(values), found.shape[1])  # [B, T, C]
        chroma[~null] = found
        return {"chroma": chroma, "null": null}

    # ------------------------------------------------------------------ conditioner
    @property
    def uses_training_audio(self) -> bool:
        """True: in training, a model follows the chroma of its own clip (MusicGen-Melody's ``self_wav``)."""
        return True

    def prepare(self, values: list[Any]) -> dict[str, Any]:
        return self.features(values)

    def forward(self, inputs: dict[str, Any]) -> Condition:
        """Embeds ``[B, chroma_length, output_dim]`` (the projected frames, repeated and cut), mask all valid."""
        chroma = inputs["chroma"].to(self.device, self.proj.weight.dtype)  # [B, T, C]
        embeds = self.proj(chroma)  # [B, T, D]
        if embeds.shape[1] < self.chroma_length:
            embeds = embeds.repeat(1, math.ceil(self.chroma_length / embeds.shape[1]), 1)
        embeds = embeds[:, : self.chroma_length]  # [B, chroma_length, D]
        return Condition(embeds, torch.ones(embeds.shape[:2], dtype=torch.bool, device=embeds.device))

    def config(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute, "output_dim": self.output_dim, "sample_rate": self.sample_rate,
            "n_fft": self.n_fft, "hop_length": self.hop_length, "chunk_length": self.chunk_length,
            "num_chroma": self.num_chroma, "chroma_length": self.chroma_length, "argmax": self.argmax,
            "null_chroma": self.null_chroma,
        }

"""tokenlm's chroma features are transformers' ``MusicgenMelodyFeatureExtractor``'s and audiocraft's.

The feature extractor needs torchaudio, which the main environment lacks (no wheel for its torch), so it is
compared here: the one-hot chroma of :class:`~conditioners.chroma.ChromaConditioner` must equal the extractor's
exactly, and the normalised chroma (``argmax=False``) must be close to audiocraft's ``ChromaExtractor`` and to the
extractor's own spectrogram and filter bank before its one-hot step, at MusicGen-Melody's settings (32 kHz,
16384 / 4096) and at a small one.
"""

from __future__ import annotations

import pytest
import torch

from conditioners.base import AudioValue
from conditioners.chroma import ChromaConditioner

#: (sample rate, n_fft, hop): MusicGen-Melody's, and a small one
SETTINGS = {"musicgen-melody": (32000, 16384, 4096), "small": (16000, 2048, 512)}


def two_note_tune(seconds: float, rate: int, low_hz: float, seed: int) -> torch.Tensor:
    """``[N]``: a note and the one a major third above, alternating twice a second, with a little noise."""
    t = torch.arange(int(seconds * rate)) / rate
    freq = low_hz * torch.where(torch.floor(t * 2) % 2 == 0, 1.0, 2 ** (4 / 12))
    noise = 0.05 * torch.randn(t.shape, generator=torch.Generator().manual_seed(seed))
    return 0.5 * torch.sin(2 * torch.pi * freq * t) + 0.2 * torch.sin(4 * torch.pi * freq * t) + noise


def tunes(rate: int) -> list[torch.Tensor]:
    """Two tunes of different lengths (the shorter zero-padded in a batch)."""
    return [two_note_tune(3.0, rate, 261.6, 0), two_note_tune(1.7, rate, 392.0, 1)]


def extractor(rate: int, n_fft: int, hop: int):
    from transformers import MusicgenMelodyFeatureExtractor

    return MusicgenMelodyFeatureExtractor(sampling_rate=rate, n_fft=n_fft, hop_length=hop)


def extractor_normalised_chroma(rate: int, n_fft: int, hop: int, batch: torch.Tensor) -> torch.Tensor:
    """The extractor's chroma ``[B, T, 12]`` before its one-hot step, from its own spectrogram and filter bank."""
    fe = extractor(rate, n_fft, hop)
    raw = torch.einsum("cf,...ft->...ct", fe.chroma_filters, fe.spectrogram(batch))  # [B, 12, T]
    return torch.nn.functional.normalize(raw, p=float("inf"), dim=-2, eps=1e-6).transpose(1, 2)


def padded(wavs: list[torch.Tensor]) -> torch.Tensor:
    """``[B, N]`` zero-padded to the longest."""
    return torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_one_hot_chroma_equals_the_feature_extractor(setting: str) -> None:
    rate, n_fft, hop = SETTINGS[setting]
    ours = ChromaConditioner("melody", 8, sample_rate=rate, n_fft=n_fft, hop_length=hop)
    wavs = tunes(rate)
    for batch in ([wavs[0]], wavs):
        expected = extractor(rate, n_fft, hop)([w.numpy() for w in batch], sampling_rate=rate,
                                               return_tensors="pt")["input_features"]  # [B, T, 12]
        chroma = ours.features([AudioValue(w[None], rate) for w in batch])["chroma"]
        assert chroma.shape == expected.shape and chroma.shape[1] == 1 + batch[0].shape[0] // hop
        assert torch.equal(chroma, expected.float())
        assert chroma.argmax(-1).unique().numel() >= 2  # the tune's notes, not one class


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_normalised_chroma_is_close_to_transformers_and_audiocraft(setting: str) -> None:
    from audiocraft.modules.chroma import ChromaExtractor

    rate, n_fft, hop = SETTINGS[setting]
    ours = ChromaConditioner("melody", 8, sample_rate=rate, n_fft=n_fft, hop_length=hop, argmax=False)
    batch = padded(tunes(rate))  # [2, N]
    chroma = ours.features([AudioValue(w[None], rate) for w in tunes(rate)])["chroma"]  # [2, T, 12]
    from_transformers = extractor_normalised_chroma(rate, n_fft, hop, batch)
    from_audiocraft = ChromaExtractor(rate, radix2_exp=n_fft.bit_length() - 1, argmax=False)(batch[:, None])
    assert chroma.shape == from_transformers.shape == from_audiocraft.shape
    torch.testing.assert_close(chroma, from_transformers, atol=1e-5, rtol=0)
    torch.testing.assert_close(chroma, from_audiocraft, atol=1e-5, rtol=0)
    assert ((chroma > 0.05) & (chroma < 0.95)).float().mean() > 0.1  # a spread chroma, not a one-hot


def test_short_melody_is_padded_to_one_window_like_the_extractor() -> None:
    rate, n_fft, hop = SETTINGS["small"]
    wav = two_note_tune(0.05, rate, 440.0, 2)  # 800 samples < n_fft
    ours = ChromaConditioner("melody", 8, sample_rate=rate, n_fft=n_fft, hop_length=hop)
    expected = extractor(rate, n_fft, hop)(wav.numpy(), sampling_rate=rate, return_tensors="pt")["input_features"]
    chroma = ours.features([AudioValue(wav[None], rate)])["chroma"]
    assert chroma.shape == expected.shape == (1, 1 + n_fft // hop, 12)
    assert torch.equal(chroma, expected.float())

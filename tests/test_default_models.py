"""The shipped default LM and LDM follow their prompts (several seeds; the majority must be right)."""

from __future__ import annotations

import math

import pytest

from tokenlm.api import TextToAudio
from tokenlm.eval.analysis import analyze

SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def default_lm() -> TextToAudio:
    return TextToAudio.from_pretrained("default")


def detections(model: TextToAudio, prompt: str, duration: float = 4.0) -> list:
    """One analysis of a generation per seed."""
    out = []
    for seed in SEEDS:
        audio = model.generate(prompt, duration=duration, seed=seed)
        out.append(analyze(audio.wav[0].numpy(), audio.sample_rate))
    return out


def majority(hits: list[bool]) -> bool:
    return sum(hits) > len(hits) / 2


def test_the_default_lm_is_the_shipped_asset_on_the_shipped_codec(default_lm):
    backend = default_lm.backend
    assert backend.name == "lm" and default_lm.sample_rate == 16000 and backend.codec.num_codebooks == 4
    assert default_lm.attributes == ["description"]


def test_a_high_sine_tone_at_880_hz_comes_out_within_50_cents(default_lm):
    found = [a.f0_hz for a in detections(default_lm, "a high sine tone at 880 Hz")]
    assert majority([f is not None and abs(1200 * math.log2(f / 880.0)) < 50 for f in found]), found


@pytest.mark.parametrize("prompt,colour", [("some brown noise", "brown"), ("a constant wash of white noise", "white")])
def test_a_noise_colour_prompt_gives_that_colour(default_lm, prompt, colour):
    found = [a.noise_colour for a in detections(default_lm, prompt)]
    assert majority([c == colour for c in found]), found


def test_a_noise_band_prompt_gives_that_band(default_lm):
    found = [a.noise_band for a in detections(default_lm, "a low rumble")]
    assert majority([b == "low" for b in found]), found


def test_a_tempo_prompt_gives_that_tempo(default_lm):
    found = [a.tempo_bpm for a in detections(default_lm, "a woodblock ticking at 150 BPM")]
    assert majority([t is not None and abs(t / 150.0 - 1.0) <= 0.04 for t in found]), found


def test_a_pitch_in_words_the_templates_never_used(default_lm):
    found = [a.f0_hz for a in detections(default_lm, "a pure tone of 440 Hz, held")]
    assert majority([f is not None and abs(1200 * math.log2(f / 440.0)) < 50 for f in found]), found


def test_the_default_lm_samples_with_its_own_defaults(default_lm):
    assert default_lm.backend.sampling_defaults == {"top_k": 20, "temperature": 0.8}
    assert default_lm.backend.conditioning.conditioners["description"].number_features is not None


# ------------------------------------------------------------------------------------ the default LDM
@pytest.fixture(scope="module")
def default_ldm() -> TextToAudio:
    return TextToAudio.from_pretrained("default-ldm")


def test_the_default_ldm_is_the_shipped_dit_on_the_shipped_codec(default_ldm):
    backend = default_ldm.backend
    assert backend.name == "ldm" and default_ldm.sample_rate == 16000 and backend.max_duration == 4.0
    assert backend.sampling_defaults == {"steps": 20, "scheduler": "dpmpp"}
    assert default_ldm.attributes == ["description"]


def test_the_default_ldm_puts_880_hz_within_50_cents(default_ldm):
    found = [a.f0_hz for a in detections(default_ldm, "a high sine tone at 880 Hz")]
    assert majority([f is not None and abs(1200 * math.log2(f / 880.0)) < 50 for f in found]), found


def test_the_default_ldm_gives_a_low_rumble(default_ldm):
    found = [a.noise_band for a in detections(default_ldm, "a low rumble")]
    assert majority([b == "low" for b in found]), found

"""Speech detectors: present on espeak-ng renders and real voice, absent on tones, noise, clicks and drum hits."""

import math
import shutil

import numpy as np
import pytest
import soundfile as sf

from tokenlm.data.sources import get_source
from tokenlm.data.sources.recorded import asterisk_voice_clips, hydrogen_hits
from tokenlm.data.synth import make_clip
from tokenlm.eval.speech import VOICE_PITCH_BOUNDARY_HZ, analyze_speech, speech_presence, voice_pitch


def _load(path: str) -> tuple[np.ndarray, int]:
    data, rate = sf.read(path, dtype="float32", always_2d=True)  # [N, C]
    return data.T, rate


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install "
                    "espeak-ng)")
def test_speech_and_voice_pitch_on_espeak_renders():
    source = get_source("speech")
    plans, _ = source.plan(40, 7, {})
    specs = plans["test_heldout"][:2] + plans["train"][:4]
    for spec in specs:
        clip = source.render(spec, {})
        present, score = speech_presence(clip.wav, clip.sample_rate)
        assert present and 0.0 < score <= 1.0, (spec, score)
        f0, register = voice_pitch(clip.wav, clip.sample_rate)
        assert register == clip.labels["voice_pitch"], (spec, f0)
        assert (f0 >= VOICE_PITCH_BOUNDARY_HZ) == (register == "high")


def test_speech_on_real_voice():
    clips = [(path, text) for path, text in asterisk_voice_clips() if len(text.split()) >= 3]
    if not clips:
        pytest.skip("asterisk-core-sounds-en-wav is not installed (real voice prompts)")
    for path, text in clips[:: max(1, len(clips) // 4)][:4]:
        wav, rate = _load(path)
        assert speech_presence(wav, rate)[0], (path, text)
        assert voice_pitch(wav, rate)[1] == "high", path  # Allison Smith's voice, ~200 Hz


@pytest.mark.parametrize("family", ["tone", "noise", "clicks", "bursts", "sweep"])
def test_no_speech_in_synthetic_clips(family):
    for index in range(3):
        wav, rate, caption, _ = make_clip(np.random.default_rng([5, index]), "sfx16k", family=family)
        assert not speech_presence(wav, rate)[0], caption


def test_no_speech_in_drum_hits():
    for index in range(2):  # synthetic kick / snare / hi-hat patterns
        wav, rate, caption, _ = make_clip(np.random.default_rng([5, index]), "music32k", family="drums")
        assert not speech_presence(wav, rate)[0], caption
    hits = hydrogen_hits()
    if not hits:
        pytest.skip("hydrogen-drumkits is not installed (recorded drum hits)")
    # recorded hits: a tom whose pitch bends as it rings can pass for a syllable (about 1 hit in 15 over the whole
    # collection, see scripts/validate_speech_detectors.py), so allow one of twelve
    flagged = [(path, name) for path, name, _ in hits[:: len(hits) // 12][:12] if speech_presence(*_load(path))[0]]
    assert len(flagged) <= 1, flagged


def test_silence_and_unvoiced_sound():
    assert speech_presence(np.zeros(16000, dtype=np.float32), 16000) == (False, 0.0)
    noise = np.random.default_rng(0).standard_normal((2, 24000)).astype(np.float32) * 0.1  # [C, N]
    analysis = analyze_speech(noise, 24000)
    assert not analysis.present and analysis.speech_seconds == 0.0
    f0, register = voice_pitch(noise, 24000)
    assert math.isnan(f0) and register is None
    with pytest.raises(ValueError, match=r"expected audio shaped \[N\] or \[C, N\]"):
        speech_presence(np.zeros((1, 2, 100), dtype=np.float32), 16000)

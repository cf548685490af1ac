"""Streaming: codes as frames complete, audio as codes arrive, and ``TextToAudio.stream`` against ``generate``."""

from __future__ import annotations

import re

import pytest
import torch

from tokenlm import TextToAudio
from tokenlm.codecs.streaming import StreamingDecoder
from tokenlm.lm.generate import frames_ready
from tokenlm.lm.patterns import build_pattern
from tokenlm.lm.sampling import SamplingParams

PROMPTS = ["a woodblock ticking at 120 bpm", "a high sine tone at 880 Hz"]


def error_db(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """RMS of the difference over RMS of the reference, in dB."""
    return float(20 * torch.log10((ours - reference).pow(2).mean().sqrt() / reference.pow(2).mean().sqrt()))


@pytest.fixture(scope="module")
def default_lm() -> TextToAudio:
    return TextToAudio.from_pretrained("default", dtype="float32")


@pytest.mark.parametrize("kind,expected", [
    ("delay", [0, 0, 0, 1, 2, 3, 4]),  # 3 codebooks: frame t is complete at step t + 3
    ("parallel", [0, 1, 2, 3, 4]),
    ("flattened", [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4]),
    ("coarse_first", [0, 0, 0, 0, 0, 1, 2, 3, 4]),  # codebook 0 of every frame first, then the rest in parallel
])
def test_frames_ready(kind: str, expected: list[int]) -> None:
    assert frames_ready(build_pattern(kind, 3, 4)).tolist() == expected


def test_frames_ready_counts_only_leading_frames() -> None:
    """Custom delays (stereo pairs) and a codebook delayed more than the others: a later frame complete before an
    earlier one is not counted until the earlier one is."""
    assert frames_ready(build_pattern("delay", 4, 3, delays=[0, 0, 1, 1])).tolist() == [0, 0, 1, 2, 3]
    assert frames_ready(build_pattern("delay", 2, 3, delays=[2, 0])).tolist() == [0, 0, 0, 1, 2, 3]


@pytest.mark.parametrize("case", ["window", "longer than the window", "prompt", "greedy two-step"])
def test_stream_tokens_join_into_generate_tokens(tiny_backend, case: str) -> None:
    backend = tiny_backend
    attributes = [{"description": "a dog barks"}, {"description": "rain on a roof"}]
    params = SamplingParams(top_k=20, cfg_coef=3.0)
    kwargs = {"seed": 5}
    duration = backend.max_duration * 0.9
    if case == "longer than the window":
        duration, kwargs["extend_stride"] = backend.max_duration * 2.3, backend.max_duration / 2
    elif case == "prompt":
        kwargs["prompt"] = torch.randint(0, backend.codec.cardinality, (2, backend.codec.num_codebooks, 7))
    elif case == "greedy two-step":
        params = SamplingParams(temperature=0, cfg_coef=2.0, two_step_cfg=True)
    chunks = list(backend.stream_tokens(attributes, duration, params, **kwargs))
    whole = backend.generate_tokens(attributes, duration, params, **kwargs)
    assert torch.equal(torch.cat(chunks, dim=-1), whole)
    assert len(chunks) > 3 and all(c.shape[:2] == whole.shape[:2] and c.shape[-1] >= 1 for c in chunks)
    if case == "prompt":
        assert torch.equal(whole[..., :7], kwargs["prompt"])  # the output starts with the prompt


def test_streaming_decoder_joins_into_the_whole_decode(default_lm: TextToAudio) -> None:
    codec = default_lm.backend.codec  # the shipped codec, float32
    codes = default_lm.generate(PROMPTS, 2.6, seed=1, return_codes=True).codes  # [2, 4, 130]
    whole = codec.decode(codes)
    decoder = StreamingDecoder(codec, context=100, lookahead=8, min_frames=5)
    pieces, frames_given = [], []
    for start in range(0, 130, 3):
        piece = decoder.push(codes[..., start: start + 3])
        assert piece.shape[-1] % 320 == 0  # whole frames
        pieces.append(piece)
        frames_given.append(sum(p.shape[-1] for p in pieces) // 320)
    assert all(given <= max(0, received - 8) for given, received in zip(frames_given, range(3, 133, 3), strict=True))
    assert [p.shape[-1] // 320 for p in pieces[:5]] == [0, 0, 0, 0, 7]  # 15 frames in: 7 past the lookahead
    pieces.append(decoder.finish())
    joined = torch.cat(pieces, dim=-1)
    assert joined.shape == whole.shape
    assert error_db(joined, whole) < -90
    naive = StreamingDecoder(codec, context=0, lookahead=0)  # no context, no lookahead: audible seams
    rough = torch.cat([naive.push(codes[..., s: s + 3]) for s in range(0, 130, 3)] + [naive.finish()], dim=-1)
    assert error_db(rough, whole) > -30
    with pytest.raises(ValueError, match="finished"):
        decoder.push(codes[..., :1])
    for bad in (dict(context=-1), dict(lookahead=1.5), dict(min_frames=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            StreamingDecoder(codec, **bad)
    with pytest.raises(ValueError, match="no frames yet"):
        StreamingDecoder(codec).finish()


def test_stream_equals_generate(default_lm: TextToAudio) -> None:
    """The shipped LM in float32, 6 s (past its 4 s window): the chunks are exact chunk sizes, and joined they are
    generate's audio to float rounding."""
    whole = default_lm.generate(PROMPTS, 6.0, seed=3).wav
    chunks = [audio.wav for audio in default_lm.stream(PROMPTS, 6.0, seed=3, chunk_seconds=0.4)]
    assert [c.shape[-1] for c in chunks] == [6400] * 15
    assert all(c.shape[:2] == (2, 1) for c in chunks)
    joined = torch.cat(chunks, dim=-1)
    assert joined.shape == whole.shape
    assert error_db(joined, whole) < -90
    odd = [audio.wav.shape[-1] for audio in default_lm.stream(PROMPTS[0], 1.0, seed=3, chunk_seconds=0.3)]
    assert odd == [4800, 4800, 4800, 1600]  # the last chunk is the rest


def test_stream_stops_when_the_listener_does(default_lm: TextToAudio, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = []
    decode_step = default_lm.backend.lm.decode_step
    monkeypatch.setattr(default_lm.backend.lm, "decode_step", lambda *a, **k: steps.append(1) or decode_step(*a, **k))
    stream = default_lm.stream(PROMPTS[0], 4.0, seed=0, chunk_seconds=0.2)
    first = next(stream)
    assert first.wav.shape == (1, 1, 3200)
    stream.close()
    assert 10 <= len(steps) < 40  # 0.2 s = 10 frames, + 3 delays + 8 lookahead; not the 203 steps of 4 s


def test_stream_bad_input_is_refused_before_any_work(default_lm: TextToAudio) -> None:
    for bad, message in ((0, "chunk_seconds must be a number of seconds > 0"), (-1.0, "> 0"),
                         (float("nan"), "> 0"), (0.01, r"shorter than one codec frame \(0.02 s\)")):
        with pytest.raises(ValueError, match=message):
            default_lm.stream("a tone", 1.0, chunk_seconds=bad)
    with pytest.raises(ValueError, match="duration must be > 0"):
        default_lm.stream("a tone", 0.0)
    with pytest.raises(ValueError, match="steps"):
        default_lm.stream("a tone", 1.0, steps=10)  # a diffusion argument


def test_diffusion_streams_once() -> None:
    model = TextToAudio.from_pretrained("default-ldm")
    chunks = list(model.stream("a high sine tone at 880 Hz", 1.0, seed=0, steps=4, chunk_seconds=0.2))
    assert len(chunks) == 1
    assert torch.equal(chunks[0].wav, model.generate("a high sine tone at 880 Hz", 1.0, seed=0, steps=4).wav)


def test_cli_streams_a_wav_through_a_pipe(default_lm: TextToAudio, tmp_path) -> None:
    """``tokenlm generate ... --stream --out -``: a WAV arrives on the pipe while the generation still runs, and it
    is the model's audio."""
    import io
    import os
    import subprocess
    import sys

    import soundfile as sf

    command = [sys.executable, "-m", "tokenlm.cli", "generate", PROMPTS[0], "--duration", "12", "--stream", "--out",
               "-", "--chunk-seconds", "0.25", "--seed", "0", "--dtype", "float32", "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        head = proc.stdout.read(44 + 8000)  # the header and the first quarter second
        still_running = proc.poll() is None
        rest = proc.stdout.read()
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    finally:
        proc.kill()
    assert head[:4] == b"RIFF" and still_running  # bytes before the end of the generation
    wav, rate = sf.read(io.BytesIO(head + rest), dtype="float32")
    assert rate == 16000 and wav.shape == (12 * 16000,)
    expected = default_lm.generate(PROMPTS[0], 12.0, seed=0).wav[0, 0].numpy()
    assert abs(wav - expected).max() < 2e-4  # 16-bit rounding


def test_cli_streams_to_files_and_refuses_what_cannot_stream(tmp_path, capsys) -> None:
    import soundfile as sf

    from tokenlm.cli import main

    out = tmp_path / "s.wav"
    assert main(["generate", *PROMPTS, "--duration", "1", "--stream", "--out", str(out), "--seed", "2", "--dtype",
                 "float32", "--subtype", "FLOAT", "--quiet"]) == 0
    model = TextToAudio.from_pretrained("default", dtype="float32")
    expected = model.generate(PROMPTS, 1.0, seed=2).wav
    for i in range(2):
        wav, rate = sf.read(tmp_path / f"s_{i}.wav", dtype="float32")
        assert rate == 16000 and error_db(torch.from_numpy(wav), expected[i, 0]) < -90
    assert "streamed" in capsys.readouterr().out
    for extra, message in ((["a", "b", "--out", "-"], "give one prompt, not 2"),
                           (["a", "--out", "-", "--normalize", "peak"], "needs the whole audio"),
                           (["a", "--out", "-", "--subtype", "FLOAT"], "16-bit PCM"),
                           (["a", "--out", str(out), "--chunk-seconds", "0"], "chunk_seconds must be")):
        assert main(["generate", *extra, "--stream", "--duration", "1", "--quiet"]) == 2
        assert re.search(message, capsys.readouterr().err)

"""The HTTP API (``POST /generate``, ``GET /health``) served by uvicorn on 127.0.0.1, driven by real clients."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import torch

from tokenlm.demo.app import DemoModels
from tokenlm.demo.http_api import build_app, wav_of

MAX_DURATION = 6.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """uvicorn in a thread, serving ``app`` on 127.0.0.1 until stopped."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def models() -> DemoModels:
    return DemoModels.load(["default"])


@pytest.fixture(scope="module")
def server(models: DemoModels):
    with Server(build_app(models, max_duration=MAX_DURATION, concurrency=1, max_queue=2)) as running:
        yield running


def test_health(server: Server) -> None:
    answer = httpx.get(f"{server.url}/health", timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["models"] == ["lm (default)"] and body["max_duration"] == MAX_DURATION
    assert (body["running_limit"], body["queue_limit"], body["admitted"]) == (1, 2, 0)


def test_generate_answers_a_wav(server: Server, models: DemoModels) -> None:
    request = {"prompt": "a high sine tone at 880 Hz", "duration": 1.0, "seed": 4, "top_k": 50, "model": "default"}
    answer = httpx.post(f"{server.url}/generate", json=request, timeout=60)
    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav"
    wav, rate = wav_of(answer.content)
    expected = models.models["lm (default)"].model.generate(request["prompt"], 1.0, seed=4, top_k=50).wav[0, 0]
    assert rate == 16000 and wav.shape == (16000,)
    assert np.abs(wav - expected.clamp(-1, 1).numpy()).max() < 1e-4  # 16-bit PCM


def test_generate_streams_while_generating(server: Server, models: DemoModels) -> None:
    request = {"prompt": "a woodblock ticking at 120 bpm", "duration": 4.0, "seed": 1, "stream": True,
               "chunk_seconds": 0.25}
    pieces, arrival = [], []
    start = time.perf_counter()
    with httpx.stream("POST", f"{server.url}/generate", json=request, timeout=60) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav"
        for piece in answer.iter_raw():
            pieces.append(piece)
            arrival.append(time.perf_counter() - start)
    data = b"".join(pieces)
    assert len(data) == 44 + 4 * 16000 * 2 and len(pieces) >= 8  # many chunks, not one answer at the end
    assert arrival[0] < arrival[-1] / 2  # the first audio came well before the last
    wav, rate = wav_of(data)
    expected = models.models["lm (default)"].model.generate(request["prompt"], 4.0, seed=1).wav[0, 0].numpy()
    assert rate == 16000 and wav.shape == expected.shape
    error = np.sqrt(np.mean((wav - expected) ** 2) / np.mean(expected ** 2))
    assert 20 * np.log10(error) < -40  # bf16 decoding windows and 16-bit PCM


@pytest.mark.parametrize("body,message", [
    (b"{not json", "not valid JSON"),
    (json.dumps({"prompt": "a tone", "duration": 1, "voice": "x"}), "unknown field 'voice'"),
    (json.dumps({"prompt": "a tone", "duration": 60}), "at most 6 s"),
    (json.dumps({"prompt": "a tone", "duration": -1}), "duration"),
    (json.dumps({"prompt": "", "duration": 1}), "prompt"),
    (json.dumps({"duration": 1}), "prompt"),
    (json.dumps({"prompt": "a tone", "duration": 1, "top_p": 2}), "top_p"),
    (json.dumps({"prompt": "a tone", "duration": 1, "seed": "x"}), "seed"),
    (json.dumps({"prompt": "a tone", "duration": 1, "model": "other"}), "unknown model 'other'"),
    (json.dumps({"prompt": "a tone", "duration": 1, "steps": 10}), "steps"),  # a diffusion argument
    (json.dumps({"prompt": "a tone", "duration": 1, "stream": True, "chunk_seconds": 0.001}), "codec frame"),
])
def test_bad_requests_get_400_with_the_reason(server: Server, body, message: str) -> None:
    answer = httpx.post(f"{server.url}/generate", content=body, headers={"Content-Type": "application/json"},
                        timeout=30)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


def test_a_client_that_goes_away_stops_its_generation(server: Server, models: DemoModels,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lm = models.models["lm (default)"].model.backend.lm
    steps = []
    decode_step = lm.decode_step
    monkeypatch.setattr(lm, "decode_step", lambda *a, **k: steps.append(1) or decode_step(*a, **k))
    request = {"prompt": "rain on a tin roof", "duration": MAX_DURATION, "stream": True, "chunk_seconds": 0.2}
    with httpx.stream("POST", f"{server.url}/generate", json=request, timeout=60) as answer:
        next(answer.iter_raw())  # the header and the first chunk, then hang up
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/health", timeout=10).json()["admitted"] != 0:
        assert time.monotonic() < deadline, "the slot was never freed"
        time.sleep(0.05)
    assert len(steps) < 0.5 * MAX_DURATION * 50  # far from the 300 steps of the whole clip


def test_a_client_that_gives_up_on_a_whole_wav_stops_its_generation(server: Server, models: DemoModels,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lm = models.models["lm (default)"].model.backend.lm
    steps = []
    decode_step = lm.decode_step
    monkeypatch.setattr(lm, "decode_step", lambda *a, **k: steps.append(1) or decode_step(*a, **k))
    request = {"prompt": "rain on a tin roof", "duration": MAX_DURATION}
    with pytest.raises(httpx.ReadTimeout):  # the client stops waiting and closes the connection
        httpx.post(f"{server.url}/generate", json=request, timeout=httpx.Timeout(30, read=0.3))
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/health", timeout=10).json()["admitted"] != 0:
        assert time.monotonic() < deadline, "the slot was never freed"
        time.sleep(0.05)
    assert 0 < len(steps) < 0.8 * MAX_DURATION * 50  # stopped before the 300 steps of the whole clip


def test_load_eight_clients_fifty_requests(models: DemoModels) -> None:
    """8 concurrent clients, 50 requests: each completes (200, a whole WAV) or is refused at once (429); none hangs,
    and the server answers /health afterwards."""
    with Server(build_app(models, max_duration=MAX_DURATION, concurrency=1, max_queue=3)) as server:
        def one(index: int) -> tuple[int, float, int]:
            body = {"prompt": f"a tone number {index}", "duration": 0.5, "seed": index, "stream": index % 2 == 0}
            start = time.perf_counter()
            answer = httpx.post(f"{server.url}/generate", json=body, timeout=120)
            return answer.status_code, time.perf_counter() - start, len(answer.content)

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(50)))
        elapsed = time.perf_counter() - start
        codes = [status for status, _, _ in results]
        assert set(codes) <= {200, 429} and codes.count(200) >= 4, codes
        assert all(size == 44 + 8000 * 2 for status, _, size in results if status == 200)
        assert max(seconds for _, seconds, _ in results) < 120 and elapsed < 300
        assert all(seconds < 5 for status, seconds, _ in results if status == 429)  # refused at once
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        assert health["status"] == "ok" and health["admitted"] == 0
    print(f"load test: {codes.count(200)} completed, {codes.count(429)} refused, {elapsed:.1f} s")


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="concurrency 0"):
        build_app(DemoModels.load(["default"]), concurrency=0)
    assert torch.get_num_threads() >= 1


def _readme_section() -> str:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return readme.split("## Streaming and the HTTP API", 1)[1].split("\n## ", 1)[0]


def test_readme_http_client_example(server: Server, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    block = next(b for b in re.findall(r"```python\n(.*?)```", _readme_section(), flags=re.S) if "127.0.0.1" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(block.replace("127.0.0.1:7860", f"127.0.0.1:{server.port}"), "README client", "exec"), {})
    wav, rate = wav_of((tmp_path / "tone.wav").read_bytes())
    assert rate == 16000 and wav.shape == (32000,)


def test_readme_streaming_commands(server: Server, tmp_path) -> None:
    """The section's command lines: the CLI pipe (into a reader instead of a sound card), the serve line parses,
    and both curl calls against the test server (durations shortened to its limit)."""
    import re
    import shlex
    import subprocess
    import sys

    from tokenlm import cli

    block = re.search(r"```bash\n(.*?)```", _readme_section(), flags=re.S).group(1)
    lines = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    assert len(lines) == 4 and all(line.endswith("| aplay") for line in (lines[0], lines[3]))
    pipe = shlex.split(lines[0].removesuffix("| aplay"))
    pipe[pipe.index("--duration") + 1] = "2"
    done = subprocess.run([sys.executable, "-m", "tokenlm.cli", *pipe[1:], "--quiet"], capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    wav, rate = wav_of(done.stdout)
    assert rate == 16000 and wav.shape == (32000,)
    serve = cli.build_parser().parse_args(shlex.split(lines[1].removesuffix("&"))[1:])
    assert serve.model == ["default"] and serve.max_duration == 30 and serve.host == "127.0.0.1"
    for line in (lines[2], lines[3].removesuffix("| aplay") + f"-o {tmp_path / 'stream.wav'}"):
        line = line.replace("127.0.0.1:7860", f"127.0.0.1:{server.port}").replace('"duration": 20', '"duration": 2')
        done = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr.decode()
    for name, seconds in (("dog.wav", 4), ("stream.wav", 2)):
        wav, rate = wav_of((tmp_path / name).read_bytes())
        assert rate == 16000 and wav.shape == (seconds * 16000,)

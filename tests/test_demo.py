"""The web demo (``tokenlm serve``): its checks and generation in Python, and the page in headless Chromium.

The browser test drives Debian's ``chromium`` with the ``playwright`` package (Playwright's own browser downloads
are not used). It is skipped, with the reason, when chromium, gradio or playwright is missing, except where
``TOKENLM_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs chromium): there a missing piece fails.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tokenlm import cli
from tokenlm.demo.app import INSTALL_HINT, DemoError, DemoModels, check_request, generate_clip, sampling_arguments

CHROMIUM = os.environ.get("TOKENLM_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("TOKENLM_REQUIRE_BROWSER") == "1"
#: the flags the browser runs with: headless, and nothing that reaches out of the machine
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def default_models() -> DemoModels:
    return DemoModels.load(["default", "default-ldm"])


# ------------------------------------------------------------------------------------ checks, without a browser
@pytest.mark.parametrize(
    "prompt,duration,seed,message",
    [
        ("", 1.0, 0, "the prompt is empty"),
        ("   ", 1.0, 0, "the prompt is empty"),
        ("a tone", -1.0, 0, "duration must be more than 0 and at most 30 seconds, got -1"),
        ("a tone", 0.0, 0, "duration must be more than 0"),
        ("a tone", 31.0, 0, "at most 30 seconds, got 31"),
        ("a tone", None, 0, "duration is empty"),
        ("a tone", float("nan"), 0, "duration must be a finite number"),
        ("a tone", 1.0, -3, "seed must be a whole number >= 0"),
        ("a tone", 1.0, 1.5, "seed must be a whole number"),
    ],
)
def test_bad_requests_are_named(prompt, duration, seed, message):
    with pytest.raises(DemoError, match=message):
        check_request(prompt, duration, seed, max_duration=30.0)


def test_a_good_request_and_an_empty_seed():
    assert check_request(" a tone ", 2, 7, 30.0) == ("a tone", 2.0, 7)
    assert check_request("a tone", 2.5, None, 30.0) == ("a tone", 2.5, None)


def test_each_backend_gets_its_own_sampling_controls(default_models):
    controls = {"top_k": 20.0, "top_p": 0.5, "temperature": 0.8, "cfg_coef": 3.0, "steps": 12.0, "cfg_rescale": 0.5}
    lm = default_models.get("lm (default)")
    ldm = default_models.get("ldm (default-ldm)")
    assert sampling_arguments(lm, controls) == {"top_k": 20, "top_p": 0.5, "temperature": 0.8, "cfg_coef": 3.0}
    assert sampling_arguments(ldm, controls) == {"steps": 12, "cfg_coef": 3.0, "cfg_rescale": 0.5}
    assert isinstance(sampling_arguments(lm, controls)["top_k"], int)
    with pytest.raises(DemoError, match="top k must be a whole number"):
        sampling_arguments(lm, {**controls, "top_k": 2.5})
    assert lm.sampling_defaults()["top_k"] == 20 and ldm.sampling_defaults()["steps"] == 20
    assert ldm.max_duration == 4.0 and lm.max_duration is None  # diffusion has a window; the LM extends


def test_generate_clip_writes_the_requested_duration(default_models, tmp_path):
    import soundfile as sf

    controls = {"top_k": 20, "top_p": 0.0, "temperature": 0.8, "cfg_coef": 3.0}
    path, image, status = generate_clip(default_models, tmp_path, "lm (default)", "a high sine tone at 880 Hz", 0.5,
                                        0, controls)
    info = sf.info(path)
    assert info.samplerate == 16000 and info.frames == 8000
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype.name == "uint8"
    assert "lm (default): 0.50 s at 16000 Hz" in status and "seed 0" in status
    again, _, _ = generate_clip(default_models, tmp_path, "lm (default)", "a high sine tone at 880 Hz", 0.5, 0,
                                controls)
    assert again != path and sf.read(again)[0].tolist() == sf.read(path)[0].tolist()  # the seed reproduces it


def test_the_model_refusals_and_the_window_reach_the_user(default_models, tmp_path):
    controls = {"top_k": 20, "top_p": 2.0, "temperature": 0.8, "cfg_coef": 3.0}
    with pytest.raises(ValueError, match=r"top_p must be a number in \[0, 1\]"):
        generate_clip(default_models, tmp_path, "lm (default)", "a tone", 0.5, 0, controls)
    with pytest.raises(DemoError, match="at most 4 seconds"):  # the diffusion model's window
        generate_clip(default_models, tmp_path, "ldm (default-ldm)", "a tone", 5.0, 0, {"steps": 2})
    with pytest.raises(DemoError, match="choose a model"):
        generate_clip(default_models, tmp_path, "nope", "a tone", 1.0, 0, {})


def test_without_gradio_serve_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert cli.main(["serve", "--model", "default"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"tokenlm serve: error: tokenlm serve needs gradio, an optional extra: {INSTALL_HINT}"


def test_bad_serve_options_are_one_line_errors(capsys):
    assert cli.main(["serve", "--concurrency", "0"]) == 2
    assert "--concurrency must be >= 1" in capsys.readouterr().err


def test_the_app_queues_with_the_concurrency_limit(default_models, tmp_path):
    pytest.importorskip("gradio")
    from tokenlm.demo.app import build_app

    app = build_app(default_models, max_duration=10, out_dir=tmp_path).queue(default_concurrency_limit=2, max_size=5)
    assert app._queue.default_concurrency_limit == 2 and app._queue.max_size == 5
    generate = next(fn for fn in app.fns.values() if fn.api_name == "generate")
    assert generate.concurrency_limit == "default" and generate.queue is not False  # the queue's limit applies


def test_a_taken_port_is_a_one_line_error(capsys):
    pytest.importorskip("gradio")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--model", "default", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"tokenlm serve: error: cannot serve on 127.0.0.1:{port}:"), err


def test_the_cli_imports_neither_gradio_nor_torch():
    code = "import sys, tokenlm.cli as c; c.build_parser(); print(sorted({'gradio', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_readme_commands_parse_and_name_what_exists():
    """The README's "Notebooks and web demo" commands (``tokenlm serve`` blocks, so they are parsed, not run)."""
    import re
    import shlex

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Notebooks and web demo", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)[1]
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.strip().splitlines()]
    serves = [argv for argv in commands if argv[0] == "tokenlm"]
    assert len(serves) == 2
    for argv in serves:
        args = cli.build_parser().parse_args(argv[1:])
        assert args.func.__name__ == "run_serve" and args.host == "127.0.0.1"
    assert cli.build_parser().parse_args(serves[1][1:]).model == ["runs/demo_lm/export", "default-ldm"]
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    for name in re.findall(r"`(\w+\.ipynb)`", section):
        assert (notebooks / name).is_file(), name


# ------------------------------------------------------------------------------------ the page, in Chromium
def _browser_or_skip():
    """``playwright.sync_api`` when the browser test can run; else a skip (or a failure where it is required)."""
    missing = []
    if not Path(CHROMIUM).is_file():
        missing.append(f"chromium ({CHROMIUM}; apt-get install chromium)")
    for module in ("gradio", "playwright"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{module} (pip install -e '.[dev]')")
    if missing:
        reason = f"the browser test needs {', '.join(missing)}"
        if REQUIRED:
            pytest.fail(f"TOKENLM_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright import sync_api

    return sync_api


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def demo_server(tmp_path):
    """``tokenlm serve --model default`` on a free port of 127.0.0.1; yields its URL."""
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenlm.cli", "serve", "--model", "default", "--host", "127.0.0.1", "--port",
         str(port), "--max-duration", "10"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"tokenlm serve exited ({process.returncode}): {(tmp_path / 'serve.log').read_text()}")
            try:  # /health answers once the page is up and the HTTP API's routes are added after it
                with urllib.request.urlopen(url + "health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tokenlm serve did not answer in 180 s: {(tmp_path / 'serve.log').read_text()}")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


DECODE = """async (src) => {
    const response = await fetch(src);
    const bytes = new Uint8Array(await response.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 8192) binary += String.fromCharCode(...bytes.subarray(i, i + 8192));
    const context = new OfflineAudioContext(1, 1, 16000);
    const decoded = await context.decodeAudioData(bytes.buffer.slice(0));
    return {base64: btoa(binary), seconds: decoded.duration};
}"""


def test_the_page_generates_plays_and_shows_errors(demo_server, tmp_path):
    sync_api = _browser_or_skip()
    import soundfile as sf

    duration = 1.0
    frame_s = 1 / 50  # one frame of the shipped codec
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(demo_server, wait_until="domcontentloaded")
            page.locator("#prompt textarea").fill("a high sine tone at 880 Hz")
            page.locator("#duration input").fill(str(duration))
            page.locator("#generate").click()
            audio = page.locator("#audio audio[src]").first  # the player's <audio> (inside its shadow root)
            audio.wait_for(state="attached", timeout=180_000)
            audio.evaluate("a => a.readyState >= 1 || new Promise(r => a.addEventListener('loadedmetadata', r))")
            element_seconds = audio.evaluate("a => a.duration")
            assert audio.evaluate("a => a.canPlayType('audio/wav')") != ""
            decoded = page.evaluate(DECODE, audio.get_attribute("src"))
            wav, rate = sf.read(io.BytesIO(base64.b64decode(decoded["base64"])))
            assert rate == 16000
            for seconds in (len(wav) / rate, decoded["seconds"], element_seconds):
                assert abs(seconds - duration) <= frame_s, (seconds, duration)
            page.get_by_text("lm (default): 1.00 s at 16000 Hz").wait_for(timeout=30_000)
            assert page.locator("#spectrogram img").count() == 1
            assert page.locator("#download a").count() >= 1
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)

            for bad, message in (("", "the prompt is empty"), ("-1", "duration must be more than 0")):
                if bad == "":
                    page.locator("#prompt textarea").fill("")
                else:
                    page.locator("#prompt textarea").fill("a high sine tone at 880 Hz")
                    page.locator("#duration input").fill(bad)
                page.locator("#generate").click()
                page.get_by_text(message).first.wait_for(state="visible", timeout=30_000)
                text = page.inner_text("body")
                assert "Traceback" not in text and 'File "' not in text, text
            page.wait_for_timeout(1000)  # the message fades in
            page.screenshot(path=str(tmp_path / "demo_error.png"), full_page=True)
        finally:
            browser.close()
    print(f"screenshots: {tmp_path / 'demo.png'}, {tmp_path / 'demo_error.png'}")
    if os.environ.get("TOKENLM_SCREENSHOTS"):
        for name in ("demo.png", "demo_error.png"):
            shutil.copy(tmp_path / name, Path(os.environ["TOKENLM_SCREENSHOTS"]) / name)


def test_the_live_player_plays_while_the_model_generates(demo_server):
    """A token LM streams into the page's live player: audio is buffered there before the generation ends, the
    live bytes are the offered file's samples, and that file is ``generate``'s audio for the same seed."""
    sync_api = _browser_or_skip()
    import numpy as np
    import soundfile as sf

    from tokenlm import TextToAudio

    prompt, duration = "a woodblock ticking at 120 bpm", 8.0
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(demo_server, wait_until="domcontentloaded")
            page.locator("#prompt textarea").fill(prompt)
            page.locator("#duration input").fill(str(duration))
            page.locator("#generate").click()
            done_text = page.get_by_text(f"lm (default): {duration:.2f} s at 16000 Hz")
            buffered_before_done = None
            deadline = time.monotonic() + 180
            while not done_text.count():
                assert time.monotonic() < deadline, "the generation did not finish"
                buffered = page.evaluate("""() => { const a = document.getElementById("tokenlm-live");
                    return a && a.buffered.length ? a.buffered.end(a.buffered.length - 1) : 0; }""")
                if buffered > 0 and buffered_before_done is None:
                    buffered_before_done = buffered
                page.wait_for_timeout(50)
            assert buffered_before_done is not None and 0 < buffered_before_done < duration, buffered_before_done
            print(f"live player: {buffered_before_done:.2f} s buffered before the {duration:g} s clip was finished")
            live_src = page.evaluate("() => document.getElementById('tokenlm-live').src")
            assert "/live/" in live_src
            live = page.evaluate(DECODE, live_src)
            audio = page.locator("#audio audio[src]").first
            final = page.evaluate(DECODE, audio.get_attribute("src"))
        finally:
            browser.close()
    live_wav, rate = sf.read(io.BytesIO(base64.b64decode(live["base64"])), dtype="float32")
    file_wav, file_rate = sf.read(io.BytesIO(base64.b64decode(final["base64"])), dtype="float32")
    assert rate == file_rate == 16000 and live_wav.shape == file_wav.shape == (int(duration * 16000),)
    assert np.abs(live_wav - file_wav).max() <= 1.5 / 32767  # the same samples (16-bit rounding)
    expected = TextToAudio.from_pretrained("default").generate(prompt, duration, seed=0).wav[0, 0].numpy()
    error = np.sqrt(np.mean((file_wav - expected) ** 2) / np.mean(expected ** 2))
    assert 20 * np.log10(error) < -35, 20 * np.log10(error)  # streamed decoding (bf16 windows) and 16-bit PCM


def test_serve_offers_the_http_api(demo_server):
    """``tokenlm serve`` answers the HTTP API on its own port beside the page: /health and a WAV from /generate."""
    import json as json_module

    base = demo_server.rstrip("/")
    with urllib.request.urlopen(f"{base}/health", timeout=30) as response:
        health = json_module.loads(response.read())
    assert health["status"] == "ok" and health["models"] == ["lm (default)"] and health["max_duration"] == 10
    request = urllib.request.Request(f"{base}/generate", method="POST", headers={"Content-Type": "application/json"},
                                     data=json_module.dumps({"prompt": "a low hum", "duration": 0.5}).encode())
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.headers["content-type"] == "audio/wav"
        data = response.read()
    assert data[:4] == b"RIFF" and len(data) == 44 + 8000 * 2

"""``tokenlm serve``: a Gradio web demo of text-to-audio generation with the token LM and the diffusion backend.

The page has a prompt, a model (backend) choice, the duration, the sampling controls of each backend (top-k,
top-p, temperature and CFG for a token LM; steps, CFG and rescale for diffusion) and a seed; it answers with an
audio player, a log-mel spectrogram and the WAV file to download. Requests wait in Gradio's queue, at most
``concurrency`` generating at once. Bad input (an empty prompt, a duration out of range, a sampling value the
model refuses) is shown in the page as a one-line error, never as a stack trace.

Example::

    from tokenlm.demo.app import DemoModels, build_app
    app = build_app(DemoModels.load(["default", "default-ldm"]))
    app.queue(default_concurrency_limit=1).launch(server_name="127.0.0.1", server_port=7860)

Gradio is imported only when the app is built (``pip install 'tokenlm[demo]'``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from tokenlm.api import TextToAudio

log = logging.getLogger("tokenlm.demo")

#: how to install what the demo needs
INSTALL_HINT = "pip install 'tokenlm[demo]'"
#: the sampling controls of each kind of backend: the page's widgets, and the generate() arguments they set
LM_CONTROLS = ("top_k", "top_p", "temperature", "cfg_coef")
DIFFUSION_CONTROLS = ("steps", "cfg_coef", "cfg_rescale")
#: output files older than this are removed from the demo's folder (Gradio keeps its own copy for the page)
KEEP_FILES_S = 3600.0
#: seconds of audio per chunk sent to the page's live player
LIVE_CHUNK_S = 0.25
#: before a request leaves the page: a fresh key for its live stream, and the live player pointed at it (token LMs)
LIVE_JS = """(...args) => {
    const key = (window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + String(Math.random())
                 ).replace(/[^A-Za-z0-9]/g, "").slice(0, 32);
    const player = document.getElementById("tokenlm-live");
    if (player && String(args[0]).startsWith("lm")) {
        player.src = "live/" + key + ".wav";
        player.play().catch(() => {});
    }
    args[args.length - 1] = key;
    return args;
}"""
LIVE_PLAYER = ('<div><b>Live</b> (token LMs: plays while the model writes)<br>'
               '<audio id="tokenlm-live" controls preload="auto" style="width: 100%"></audio></div>')


class DemoError(ValueError):
    """Bad input to the demo: its message is shown in the page as it is."""


def import_gradio() -> Any:
    """``gradio``, with its usage analytics off (nothing leaves the machine); a clear error when it is missing."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as error:
        raise RuntimeError(f"tokenlm serve needs gradio, an optional extra: {INSTALL_HINT}") from error
    return gradio


@dataclass
class DemoModel:
    """One model the page offers: its label in the backend choice, and its sampling defaults."""

    label: str
    model: TextToAudio

    @property
    def kind(self) -> str:
        """``lm`` for token LMs (top-k / top-p / temperature / CFG), ``diffusion`` otherwise (steps / CFG...)."""
        return "lm" if hasattr(self.model.backend, "generate_tokens") else "diffusion"

    @property
    def max_duration(self) -> float | None:
        """The longest clip the model makes (a diffusion model's window; None: token LMs extend by windows)."""
        window = getattr(self.model.backend, "max_duration", None)
        return float(window) if self.kind == "diffusion" and window else None

    def sampling_defaults(self) -> dict[str, Any]:
        """What ``generate`` samples with when given nothing (the model's own defaults, else the backend's)."""
        params = self.model.backend.make_sampling({})
        return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(vars(params))


class DemoModels:
    """The models of one demo, loaded once at start-up, by label."""

    def __init__(self, models: list[DemoModel]) -> None:
        if not models:
            raise ValueError("the demo needs at least one model")
        self.models = {entry.label: entry for entry in models}

    @classmethod
    def load(cls, names: list[str], device: str | None = None) -> DemoModels:
        """Load ``names`` (checkpoint folders, ``"default"`` or ``"default-ldm"``)."""
        from tokenlm.api import TextToAudio

        models = []
        for name in dict.fromkeys(names):  # each once, in order
            model = TextToAudio.from_pretrained(name, device=device)
            models.append(DemoModel(f"{model.backend.name} ({name})", model))
        return cls(models)

    @property
    def labels(self) -> list[str]:
        return list(self.models)

    def first(self, kind: str) -> DemoModel | None:
        return next((entry for entry in self.models.values() if entry.kind == kind), None)

    def get(self, label: str) -> DemoModel:
        if label not in self.models:
            raise DemoError(f"choose a model: one of {', '.join(self.models)} (got {label!r})")
        return self.models[label]


def _number(name: str, value: Any, *, integer: bool = False) -> float | int:
    """A widget's value as a finite number (an emptied field is named in the error)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DemoError(f"{name} is empty: enter a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DemoError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DemoError(f"{name} must be a finite number, got {value!r}")
    if integer:
        if number != round(number):
            raise DemoError(f"{name} must be a whole number, got {value!r}")
        return int(round(number))
    return number


def check_request(prompt: Any, duration: Any, seed: Any, max_duration: float) -> tuple[str, float, int | None]:
    """The prompt, duration and seed of a request, or a :class:`DemoError` that says what to change."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise DemoError("the prompt is empty: describe the sound you want, e.g. 'a high sine tone at 880 Hz'")
    seconds = _number("duration", duration)
    if not 0 < seconds <= max_duration:
        raise DemoError(f"duration must be more than 0 and at most {max_duration:g} seconds, got {seconds:g}")
    if seed is None or (isinstance(seed, str) and not seed.strip()):
        return prompt.strip(), seconds, None  # a new random result each time
    number = _number("seed", seed, integer=True)
    if number < 0:
        raise DemoError(f"seed must be a whole number >= 0 (or empty for a random one), got {number}")
    return prompt.strip(), seconds, int(number)


def sampling_arguments(entry: DemoModel, controls: dict[str, Any]) -> dict[str, Any]:
    """The ``generate`` sampling arguments from the page's controls, for the controls of ``entry``'s kind that its
    backend takes (a ``diffusers`` pipeline has no rescale, for instance)."""
    names = LM_CONTROLS if entry.kind == "lm" else DIFFUSION_CONTROLS
    taken = set(entry.model.backend.sampling_parameters)
    integer = {"top_k", "steps"}
    return {name: _number(name.replace("_coef", "").replace("_", " "), controls[name], integer=name in integer)
            for name in names if name in taken and name in controls}


def spectrogram(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """A ``[H, W, 3]`` log-mel picture of a clip (low frequencies at the bottom)."""
    from tokenlm.eval.png import spectrogram_image

    return spectrogram_image(wav, sample_rate, height=192, width=640)


def _prune(folder: Path, keep_s: float = KEEP_FILES_S) -> None:
    """Remove the demo's output files older than ``keep_s`` seconds."""
    cutoff = time.time() - keep_s
    for path in folder.glob("tokenlm_*.wav"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def generate_clip(models: DemoModels, out_dir: str | Path, label: str, prompt: Any, duration: Any, seed: Any,
                  controls: dict[str, Any], max_duration: float = 30.0, live: Any = None
                  ) -> tuple[Path, np.ndarray, str]:
    """Generate one clip as the page asks: returns the WAV written to ``out_dir``, its spectrogram and a status
    line. Bad input raises :class:`DemoError`; what the model refuses raises its own ``ValueError``. With ``live``
    (a :class:`~tokenlm.demo.live.LiveStream`) a token LM streams: each chunk's samples go to the live player as they
    are made, and the file is those chunks joined."""
    entry = models.get(label)
    window = entry.max_duration
    limit = min(max_duration, window) if window else max_duration
    prompt, seconds, seed = check_request(prompt, duration, seed, limit)
    sampling = sampling_arguments(entry, controls)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _prune(out)
    started = time.perf_counter()
    if live is not None and entry.kind == "lm":
        audio = _stream_clip(entry.model, prompt, seconds, seed, sampling, live)
    else:
        audio = entry.model.generate(prompt, seconds, seed=seed, **sampling)
    elapsed = time.perf_counter() - started
    from tokenlm.audio import LevelWarning

    with warnings.catch_warnings(record=True) as caught:  # as `tokenlm generate` writes it: the model's level
        warnings.simplefilter("always", LevelWarning)
        path = audio.save(out / f"tokenlm_{uuid.uuid4().hex[:12]}.wav")[0]
    note = "; scaled down to avoid clipping" if any(issubclass(w.category, LevelWarning) for w in caught) else ""
    wav = audio.wav[0].numpy()  # [C, N]
    status = (f"{entry.label}: {audio.duration:.2f} s at {audio.sample_rate} Hz in {elapsed:.1f} s "
              f"({elapsed / audio.duration:.2f} s per second of audio), seed {seed if seed is not None else 'random'}"
              f"{note}")
    return path, spectrogram(wav, audio.sample_rate), status


def _stream_clip(model: TextToAudio, prompt: str, seconds: float, seed: int | None, sampling: dict[str, Any],
                 live: Any) -> Any:
    """Generate with ``TextToAudio.stream``: the live player gets a WAV header, then each chunk's 16-bit samples;
    returns the whole :class:`~tokenlm.api.Audio` (the chunks joined)."""
    import torch

    from tokenlm.api import Audio
    from tokenlm.audio import pcm16_bytes, wav_stream_header

    pieces = []
    try:
        for chunk in model.stream(prompt, seconds, seed=seed, chunk_seconds=LIVE_CHUNK_S, **sampling):
            if not pieces:
                live.push(wav_stream_header(round(seconds * model.sample_rate), chunk.wav.shape[1], model.sample_rate))
            live.push(pcm16_bytes(chunk.wav[0]))
            pieces.append(chunk.wav)
    finally:
        live.finish()
    return Audio(torch.cat(pieces, dim=-1), model.sample_rate)


def build_app(models: DemoModels, *, max_duration: float = 30.0, out_dir: str | Path | None = None) -> Any:
    """The Gradio ``Blocks`` app (not launched). ``out_dir`` holds the generated files (default: a temporary
    folder)."""
    gr = import_gradio()
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="tokenlm_demo_"))
    first = models.labels[0]
    lm, diffusion = models.first("lm"), models.first("diffusion")
    lm_defaults = lm.sampling_defaults() if lm else {}
    diffusion_defaults = diffusion.sampling_defaults() if diffusion else {}
    default_duration = min(4.0, max_duration)

    from tokenlm.demo.live import LiveStreams

    live_streams = LiveStreams()

    def run(label, prompt, duration, seed, top_k, top_p, temperature, lm_cfg, steps, diffusion_cfg, rescale,
            live_key=None):
        entry = models.models.get(label)
        try:
            live = live_streams.stream(live_key) if live_key else None
        except ValueError:
            live = None  # a page that sent no valid key just gets no live playback
        cfg = lm_cfg if entry is None or entry.kind == "lm" else diffusion_cfg
        controls = {"top_k": top_k, "top_p": top_p, "temperature": temperature, "cfg_coef": cfg, "steps": steps,
                    "cfg_rescale": rescale}
        try:
            path, image, status = generate_clip(models, out, label, prompt, duration, seed, controls, max_duration,
                                                live=live)
        except (ValueError, FileNotFoundError) as error:  # bad input: said in the page, in one line
            raise gr.Error(str(error), title="Invalid input", print_exception=False) from None
        except Exception as error:  # noqa: BLE001 - never a stack trace in the page; the server log has it
            log.exception("generation failed")
            raise gr.Error(f"generation failed: {type(error).__name__}: {error}", print_exception=False) from None
        return str(path), image, str(path), status

    def show_controls(label):
        entry = models.models.get(label)
        is_lm = entry is not None and entry.kind == "lm"
        return gr.update(visible=is_lm), gr.update(visible=not is_lm)

    with gr.Blocks(title="tokenlm: text to audio", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown("# tokenlm: text to audio\nA token language model and a latent-diffusion model behind one API. "
                    "The shipped models know synthetic sounds: tones by note or Hz, white / pink / brown noise, "
                    "rumbles and hisses, sweeps, counted bursts and beeps, clicks at a tempo.")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Prompt", placeholder="a high sine tone at 880 Hz", lines=2,
                                    elem_id="prompt")
                with gr.Row():
                    model = gr.Radio(models.labels, value=first, label="Backend", elem_id="backend")
                    duration = gr.Number(value=default_duration, label=f"Duration (s, at most {max_duration:g})",
                                         elem_id="duration")
                    seed = gr.Number(value=0, precision=0, label="Seed (empty: random)", elem_id="seed")
                with gr.Column(visible=models.get(first).kind == "lm") as lm_group:
                    gr.Markdown("**Token LM sampling** (the model's own defaults)")
                    with gr.Row():
                        top_k = gr.Number(value=lm_defaults.get("top_k", 250), precision=0, label="top-k (0: off)",
                                          elem_id="top_k")
                        top_p = gr.Slider(0.0, 1.0, value=lm_defaults.get("top_p", 0.0), step=0.01,
                                          label="top-p (0: off)", elem_id="top_p")
                    with gr.Row():
                        temperature = gr.Slider(0.0, 2.0, value=lm_defaults.get("temperature", 1.0), step=0.05,
                                                label="temperature (0: greedy)", elem_id="temperature")
                        lm_cfg = gr.Slider(0.0, 10.0, value=lm_defaults.get("cfg_coef", 3.0), step=0.1,
                                           label="CFG (1: none)", elem_id="lm_cfg")
                with gr.Column(visible=models.get(first).kind != "lm") as diffusion_group:
                    gr.Markdown("**Diffusion sampling** (the model's own defaults)")
                    with gr.Row():
                        steps = gr.Slider(1, 200, value=diffusion_defaults.get("steps", 50), step=1, label="steps",
                                          elem_id="steps")
                        diffusion_cfg = gr.Slider(0.0, 15.0, value=diffusion_defaults.get("cfg_coef", 5.0), step=0.1,
                                                  label="CFG (1: none)", elem_id="diffusion_cfg")
                        rescale = gr.Slider(0.0, 1.0, value=diffusion_defaults.get("cfg_rescale", 0.75), step=0.05,
                                            label="CFG rescale", elem_id="rescale")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=2):
                gr.HTML(LIVE_PLAYER, elem_id="live")
                live_key = gr.Textbox(visible=False, elem_id="live_key")
                player = gr.Audio(label="Audio", type="filepath", format="wav", interactive=False,
                                  elem_id="audio")
                image = gr.Image(label="Log-mel spectrogram", type="numpy", interactive=False, elem_id="spectrogram")
                download = gr.File(label="Download WAV", interactive=False, elem_id="download")
                status = gr.Markdown(elem_id="status")
        model.change(show_controls, inputs=model, outputs=[lm_group, diffusion_group], queue=False)
        inputs = [model, prompt, duration, seed, top_k, top_p, temperature, lm_cfg, steps, diffusion_cfg, rescale,
                  live_key]
        outputs = [player, image, download, status]
        button.click(run, inputs=inputs, outputs=outputs, api_name="generate", js=LIVE_JS)
        prompt.submit(run, inputs=inputs, outputs=outputs, api_name=False, js=LIVE_JS)
    app.tokenlm_out_dir = out  # where the files are written (allowed_paths of launch)
    app.tokenlm_live = live_streams  # what serve's live/<key>.wav route reads
    return app


def serve(names: list[str] | None = None, *, host: str = "127.0.0.1", port: int = 7860, concurrency: int = 1,
          max_queue: int = 32, max_duration: float = 30.0, device: str | None = None) -> None:
    """Load the models and serve the demo until interrupted."""
    if concurrency < 1:
        raise ValueError(f"--concurrency must be >= 1, got {concurrency}")
    if max_queue < 1:
        raise ValueError(f"--max-queue must be >= 1, got {max_queue}")
    if not math.isfinite(max_duration) or max_duration <= 0:
        raise ValueError(f"--max-duration must be > 0 seconds, got {max_duration}")
    gr = import_gradio()  # before the models load: a missing extra fails at once
    if not names:
        from tokenlm.defaults import shipped_defaults

        names = shipped_defaults() or ["default"]
    models = DemoModels.load(names, device=device)
    app = build_app(models, max_duration=max_duration).queue(default_concurrency_limit=concurrency,
                                                             max_size=max_queue)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])  # no web fonts
    print(f"tokenlm serve: {', '.join(models.labels)} on http://{host}:{port} "
          f"(at most {concurrency} generating at once, {max_queue} waiting)", flush=True)
    try:
        app.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=False,
                   ssr_mode=False, allowed_paths=[str(app.tokenlm_out_dir)], theme=theme, footer_links=[], quiet=True,
                   prevent_thread_lock=True)
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise RuntimeError(f"cannot serve on {host}:{port}: {error}") from None
    from tokenlm.demo.http_api import build_router
    from tokenlm.demo.live import live_router

    app.server_app.include_router(live_router(app.tokenlm_live))  # the page's live player

    # the HTTP API for programs, on the same server: POST /generate, GET /health (its own limits, same values)
    app.server_app.include_router(build_router(models, max_duration=max_duration, concurrency=concurrency,
                                               max_queue=max_queue))
    print(f"tokenlm serve: HTTP API on http://{host}:{port}/generate and /health", flush=True)
    app.block_thread()

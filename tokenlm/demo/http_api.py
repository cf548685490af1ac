"""An HTTP API for programs, on the web stack Gradio brings (FastAPI, uvicorn): ``POST /generate``, ``GET /health``.
Imported by ``tokenlm serve`` only (FastAPI comes with the demo extra).

``tokenlm serve`` adds these routes to the demo's own server (same host and port). ``POST /generate`` takes JSON::

    {"prompt": "a dog barks twice", "duration": 4.0, "seed": 0, "top_k": 250, "cfg_coef": 3.0,
     "model": "default", "stream": false, "chunk_seconds": 0.5}

and answers with a WAV (16-bit PCM). With ``"stream": true`` the WAV comes as a chunked response written while the
model generates (its header first, sized for the requested duration), so a player can start at once.

Limits: at most ``concurrency`` generations run at once and ``max_queue`` more wait; a request beyond that is
refused at once with 429 (``Retry-After``). A duration above ``max_duration`` is refused with 400 naming the limit;
malformed JSON, unknown fields and out-of-range values get 400 with the reason. A client that goes away stops its
generation and frees its slot: mid-stream between two chunks, and while it waits for a whole WAV at the next step
(the connection is polled every 0.1 s).

Example client::

    import json, urllib.request
    request = urllib.request.Request("http://127.0.0.1:7860/generate", method="POST",
                                     data=json.dumps({"prompt": "a dog barks twice", "duration": 2}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        open("dog.wav", "wb").write(response.read())
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import Request  # at module level: FastAPI reads the handlers' annotations from here

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

    from tokenlm.demo.app import DemoModels

log = logging.getLogger("tokenlm.api")

#: the request fields and their JSON types (anything else is refused)
SAMPLING_FIELDS = ("top_k", "top_p", "temperature", "cfg_coef", "steps", "cfg_rescale")


class ClientGone(Exception):
    """Raised between two generation steps once the client has disconnected."""


async def _watch(request: Any, stop: threading.Event, every: float = 0.1) -> None:
    """Set ``stop`` when the client of ``request`` disconnects (polled every ``every`` seconds)."""
    while not stop.is_set():
        if await request.is_disconnected():
            stop.set()
            return
        await asyncio.sleep(every)


class Slots:
    """Admission control: ``running`` generations at once, ``waiting`` more in line, the rest refused."""

    def __init__(self, running: int, waiting: int) -> None:
        self.limit, self.waiting_limit = running, waiting
        self._admitted = 0
        self._lock = threading.Lock()
        self._run = asyncio.Semaphore(running)

    def admit(self) -> bool:
        """Take a place (running or waiting); False when the line is full."""
        with self._lock:
            if self._admitted >= self.limit + self.waiting_limit:
                return False
            self._admitted += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._admitted -= 1

    @property
    def admitted(self) -> int:
        return self._admitted

    async def run(self) -> None:
        await self._run.acquire()

    def done(self) -> None:
        self._run.release()


def _request_model(max_duration: float, labels: list[str]) -> Any:
    """The pydantic model of a ``POST /generate`` body."""
    from pydantic import BaseModel, ConfigDict, Field

    class GenerateRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prompt: str = Field(min_length=1, max_length=2000)
        duration: float = Field(gt=0, le=max_duration, allow_inf_nan=False)
        model: str | None = None
        seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
        top_k: int | None = Field(default=None, ge=0)
        top_p: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
        temperature: float | None = Field(default=None, ge=0, allow_inf_nan=False)
        cfg_coef: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
        steps: int | None = Field(default=None, ge=1, le=1000)
        cfg_rescale: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
        stream: bool = False
        chunk_seconds: float = Field(default=0.5, gt=0, le=10, allow_inf_nan=False)

    GenerateRequest.__doc__ = f"Generation request (models: {labels})"
    return GenerateRequest


def wav_bytes(wav: Any, sample_rate: int) -> bytes:
    """``[C, N]`` float samples as a complete 16-bit WAV file."""
    from tokenlm.audio import pcm16_bytes, wav_stream_header

    return wav_stream_header(int(wav.shape[-1]), int(wav.shape[0]), sample_rate) + pcm16_bytes(wav)


def build_router(models: DemoModels, *, max_duration: float = 30.0, concurrency: int = 1,
                 max_queue: int = 32) -> APIRouter:
    """The ``/generate`` and ``/health`` routes over the demo's models (see the module docstring)."""
    from fastapi import APIRouter
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    if concurrency < 1 or max_queue < 0 or not (math.isfinite(max_duration) and max_duration > 0):
        raise ValueError(f"bad limits: concurrency {concurrency} (>= 1), max_queue {max_queue} (>= 0), "
                         f"max_duration {max_duration} (> 0)")
    slots = Slots(concurrency, max_queue)
    body_model = _request_model(max_duration, models.labels)
    # a model is named by its label ("lm (default)") or by what it was loaded from ("default")
    names = {label: label for label in models.labels}
    names.update({label.split(" (", 1)[1].removesuffix(")"): label for label in models.labels if " (" in label})
    router = APIRouter()

    def error(status: int, message: str, **headers: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": models.labels, "max_duration": max_duration,
                "running_limit": slots.limit, "queue_limit": slots.waiting_limit, "admitted": slots.admitted}

    @router.post("/generate")
    async def generate(request: Request) -> Response:
        from pydantic import ValidationError

        try:
            raw = await request.json()
        except ValueError as err:
            return error(400, f"the body is not valid JSON: {err}")
        try:
            body = body_model.model_validate(raw)
        except ValidationError as err:
            return error(400, "; ".join(_describe(e, max_duration) for e in err.errors()))
        label = names.get(body.model or models.labels[0])
        if label is None:
            return error(400, f"unknown model {body.model!r}; this server has {sorted(names)}")
        model = models.models[label].model
        sampling = {name: getattr(body, name) for name in SAMPLING_FIELDS if getattr(body, name) is not None}
        if not slots.admit():
            return error(429, f"the server is busy: {slots.limit} generating and {slots.waiting_limit} waiting; "
                         "try again later", **{"Retry-After": "1"})
        try:
            await slots.run()
        except BaseException:
            slots.leave()
            raise
        stop = threading.Event()  # set when the client goes away: the next step of the generation stops it

        def stop_when_asked(done: int, total: int) -> None:
            if stop.is_set():
                raise ClientGone

        watcher = None if body.stream else asyncio.ensure_future(_watch(request, stop))
        streaming = False  # once the stream is made, its response frees the slot when it ends
        try:
            if body.stream:
                chunks = await run_in_threadpool(
                    lambda: model.stream(body.prompt, body.duration, seed=body.seed, chunk_seconds=body.chunk_seconds,
                                         **sampling))
                streaming = True
            else:
                audio = await run_in_threadpool(
                    lambda: model.generate(body.prompt, body.duration, seed=body.seed, callback=stop_when_asked,
                                           **sampling))
        except ClientGone:
            log.info("client went away: generation stopped")
            return Response(status_code=499)
        except ValueError as err:  # what the model refuses (a sampling value, a chunk size) is the client's error
            return error(400, str(err))
        finally:
            if watcher is not None:
                watcher.cancel()
            if not streaming:
                slots.done()
                slots.leave()
        if not body.stream:
            return Response(wav_bytes(audio.wav[0], audio.sample_rate), media_type="audio/wav")
        total = round(body.duration * model.sample_rate)
        return StreamingResponse(_stream(chunks, request, slots, model.sample_rate, total), media_type="audio/wav")

    return router


async def _stream(chunks: Iterator[Any], request: Any, slots: Slots, sample_rate: int, total: int
                  ) -> AsyncIterator[bytes]:
    """The WAV header, then each chunk's samples as the model makes them; the slot is freed however it ends."""
    from fastapi.concurrency import run_in_threadpool

    from tokenlm.audio import pcm16_bytes, wav_stream_header

    sentinel = object()
    header_sent = False
    try:
        while True:
            chunk = await run_in_threadpool(next, chunks, sentinel)  # one chunk of generation, off the event loop
            if chunk is sentinel:
                return
            if await request.is_disconnected():
                log.info("client went away: generation stopped")
                return
            if not header_sent:
                yield wav_stream_header(total, int(chunk.wav.shape[1]), sample_rate)
                header_sent = True
            yield pcm16_bytes(chunk.wav[0])
    finally:  # also on cancellation (the client went away): nothing here awaits
        chunks.close()  # stops the generation where it is (a step in flight has finished: threads are not cut)
        slots.done()
        slots.leave()


def _describe(problem: dict[str, Any], max_duration: float) -> str:
    """One pydantic validation error as a line naming the field."""
    field = ".".join(str(part) for part in problem.get("loc", ())) or "body"
    if problem.get("type") == "extra_forbidden":
        return f"unknown field {field!r}"
    if field == "duration" and problem.get("type") == "less_than_equal":
        return f"duration must be at most {max_duration:g} s (this server's limit), got {problem.get('input')!r}"
    return f"{field}: {problem.get('msg', 'invalid')} (got {problem.get('input')!r})"


def build_app(models: DemoModels, **limits: Any) -> FastAPI:
    """A FastAPI app with only the HTTP API (no web page): what tests and a headless deployment serve."""
    from fastapi import FastAPI

    app = FastAPI(title="tokenlm", docs_url=None, redoc_url=None)
    app.include_router(build_router(models, **limits))
    return app


def wav_of(response_bytes: bytes) -> tuple[Any, int]:
    """Decode a WAV answer (``[N, C]`` float samples and the rate): for clients and tests."""
    import soundfile as sf

    return sf.read(io.BytesIO(response_bytes), dtype="float32")

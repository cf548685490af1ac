"""Live playback for the web demo: the page's player fetches ``live/<key>.wav`` while the token LM generates.

The page gives each request a random key and points its live player at ``live/<key>.wav`` before the request
reaches the model. The generation pushes a WAV header (sized for the requested duration) and then each chunk's
16-bit PCM into the :class:`LiveStream` of that key; the route answers with those bytes as they come, so the
browser plays the audio while it is being made. The same chunks, joined, are the file the page offers at the end:
one generation feeds both.

Streams are kept in a bounded registry and forgotten a while after they end (or if they never start).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

#: how a key looks (the page makes them from crypto.randomUUID without dashes)
KEY = re.compile(r"^[A-Za-z0-9]{8,64}$")
#: streams kept at most; the oldest go first
MAX_STREAMS = 64
#: seconds a stream is kept after it was made
KEEP_S = 600.0
#: seconds the route waits for a stream to start (the request may still be queued)
WAIT_FOR_START_S = 600.0


class LiveStream:
    """The bytes of one live WAV, written by the generation and read by the route."""

    def __init__(self) -> None:
        self.created = time.monotonic()
        self._chunks: list[bytes] = []
        self._done = False
        self._changed = threading.Condition()

    def push(self, data: bytes) -> None:
        """Append bytes (the header first, then PCM)."""
        with self._changed:
            self._chunks.append(bytes(data))
            self._changed.notify_all()

    def finish(self) -> None:
        """No more bytes will come."""
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def read_from(self, index: int, timeout: float) -> tuple[list[bytes], bool]:
        """The chunks from ``index`` on (waiting up to ``timeout`` s for one), and whether the stream has ended."""
        with self._changed:
            if index >= len(self._chunks) and not self._done:
                self._changed.wait(timeout)
            return self._chunks[index:], self._done


class LiveStreams:
    """The registry of live streams by key (thread-safe, bounded)."""

    def __init__(self, max_streams: int = MAX_STREAMS, keep_s: float = KEEP_S) -> None:
        self.max_streams, self.keep_s = max_streams, keep_s
        self._streams: dict[str, LiveStream] = {}
        self._lock = threading.Lock()

    def stream(self, key: str) -> LiveStream:
        """The stream of ``key``, made if it is new (by the generation or by the route, whichever comes first)."""
        if not isinstance(key, str) or not KEY.match(key):
            raise ValueError(f"a live stream key is 8 to 64 letters and digits, got {key!r}")
        with self._lock:
            now = time.monotonic()
            for old in [k for k, s in self._streams.items() if now - s.created > self.keep_s]:
                del self._streams[old]
            if key not in self._streams:
                while len(self._streams) >= self.max_streams:
                    self._streams.pop(next(iter(self._streams)))
                self._streams[key] = LiveStream()
            return self._streams[key]


def live_router(streams: LiveStreams) -> Any:
    """``GET /live/{key}.wav``: the bytes of a live stream as they are written (404 for a malformed key)."""
    from fastapi import APIRouter
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse, StreamingResponse

    router = APIRouter()

    @router.get("/live/{key}.wav")
    async def live(key: str) -> Any:
        try:
            stream = streams.stream(key)
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=404)
        return StreamingResponse(_follow(stream), media_type="audio/wav")

    async def _follow(stream: LiveStream) -> AsyncIterator[bytes]:
        index, started = 0, time.monotonic()
        while True:
            chunks, done = await run_in_threadpool(stream.read_from, index, 1.0)
            for chunk in chunks:
                yield chunk
            index += len(chunks)
            if done and not chunks:
                return
            if index == 0 and time.monotonic() - started > WAIT_FOR_START_S:
                return

    return router

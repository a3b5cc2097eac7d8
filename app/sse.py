"""Server-sent events on the wire (WHATWG `text/event-stream`).

`SSEResponse` turns the service's event iterator into frames: a `retry:` hint first, then one
`id:` / `event:` / `data:` frame per event and a `: ping` comment for each keep-alive. Proxies
must not buffer or cache it, hence its headers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Send

from app.jobs import Event

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PING = b": ping\n\n"


def encode_event(event: Event) -> bytes:
    """One SSE frame. JSON never contains a raw newline, so `data` fits on one line."""
    data = json.dumps(event.data, separators=(",", ":"), allow_nan=False)
    return f"id: {event.id}\nevent: {event.name}\ndata: {data}\n\n".encode()


async def frames(events: AsyncIterator[Event | None], retry_ms: int) -> AsyncIterator[bytes]:
    """The byte frames of `events` (None = keep-alive ping)."""
    # aclosing: when the client leaves, the service's iterator must run its cleanup now (and
    # cancel a POST-stream job), not whenever the garbage collector finds it.
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        yield f"retry: {retry_ms}\n\n".encode()
        async for event in events:
            yield PING if event is None else encode_event(event)


class SSEResponse(StreamingResponse):
    """A streaming response that always closes its event iterator, even when the client's
    disconnect cancels the send half-way."""

    media_type = MEDIA_TYPE

    def __init__(self, events: AsyncIterator[Event | None], retry_ms: int,
                 headers: dict[str, str] | None = None) -> None:
        self._frames = frames(events, retry_ms)
        super().__init__(self._frames, headers={**HEADERS, **(headers or {})},
                         media_type=MEDIA_TYPE)

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            await self._frames.aclose()  # type: ignore[attr-defined]


def parse_last_event_id(header: str | None, query: Any) -> int:
    """The id a reconnecting client saw last (header wins over the query fallback that
    EventSource polyfills use); -1 replays everything."""
    for value in (header, query):
        if value is None:
            continue
        try:
            return int(str(value).strip())
        except ValueError:
            continue
    return -1

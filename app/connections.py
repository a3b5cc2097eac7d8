"""Connection limits uvicorn lacks, as its HTTP protocol with two additions.

uvicorn waits as long as a client likes for a request's line and headers, and keeps every
connection it accepts. `guarded_protocol(limits)` is the httptools protocol plus:

- a deadline for the request line and headers, from the connection's (or the request's) first
  byte: a client that trickles them is disconnected (slowloris);
- a cap on open connections: a request on a connection beyond it gets the service's 503 +
  Retry-After (problem+json) and its connection closes.

The body's deadline is the app's (app/middleware.py), which can still answer 408.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.errors import unavailable
from app.problems import send_problem


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float
    retry_after_s: int
    problem_base_uri: str


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; `limits` is set on the subclass `guarded_protocol` makes."""

    limits: ConnectionLimits
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_header_timer()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        if len(self.connections) > self.limits.max_connections:  # this one included
            self.app = self._refuse
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.limits.header_timeout_s,
                                                      self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        """The answer on a connection over the cap (it runs instead of the app)."""
        scope.setdefault("state", {})["request_id"] = uuid.uuid4().hex
        error = unavailable("too_many_connections", f"the server holds its maximum of "
                            f"{self.limits.max_connections} connections; retry shortly",
                            self.limits.retry_after_s)
        error.headers["Connection"] = "close"
        await send_problem(scope, send, error, self.limits.problem_base_uri)


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """The protocol class to hand uvicorn (`uvicorn.Config(http=...)`)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})

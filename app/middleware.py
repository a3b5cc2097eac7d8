"""Pure-ASGI middleware that runs before any route parses a request.

- `RequestContextMiddleware`: gives every request an id (the client's `X-Request-ID` when it is
  sane) and echoes it on every response, errors and streams included.
- `HostGuardMiddleware`: answers 421 to a `Host` the service was not told it serves, so a web
  page whose name was rebound to this address (DNS rebinding) cannot reach it from a browser.
- `BodyGuardMiddleware`: refuses bodies over the size limit (413) by `Content-Length` and by
  counting what actually arrives, and non-JSON bodies (415), gives the whole body a deadline
  (408, connection closed), then replays the body to the app.

Both are pure ASGI (not `BaseHTTPMiddleware`) so streaming responses and disconnects pass through
untouched.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ApiError
from app.problems import send_problem

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class RequestContextMiddleware:
    """Assigns `scope["state"]["request_id"]` and adds `X-Request-ID` to the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def split_host(value: str) -> tuple[str, str | None]:
    """(name, port) of a `Host` header or an allowed-hosts entry, lower-cased; an IPv6 literal
    keeps its brackets: `[::1]:8000` -> (`[::1]`, `8000`)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        return f"{name}]", rest[1:] if rest.startswith(":") else None
    name, colon, port = value.rpartition(":")
    return (name, port) if colon else (value, None)


class HostPolicy:
    """Which `Host` headers are ours: `name:port` exactly, `name:*` with any port or none,
    `name` without a port; `*` accepts every host."""

    def __init__(self, allowed: Iterable[str]) -> None:
        entries = [entry.strip() for entry in allowed if entry.strip()]
        self.any = "*" in entries
        self.patterns = {split_host(entry) for entry in entries}

    def allows(self, host: str | None) -> bool:
        if self.any:
            return True
        if not host:
            return False
        name, port = split_host(host)
        return (name, port) in self.patterns or (name, "*") in self.patterns


class HostGuardMiddleware:
    """421 Misdirected Request for a `Host` outside the allowed list."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str], problem_base_uri: str) -> None:
        self.app = app
        self.policy = HostPolicy(allowed_hosts)
        self.base_uri = problem_base_uri

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the app has no websocket routes
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host")
        if self.policy.allows(host):
            await self.app(scope, receive, send)
            return
        error = ApiError(421, "misdirected-request", f"this service does not answer to host "
                         f"{host!r}; its operator lists the names it serves in TRM_ALLOWED_HOSTS")
        await send_problem(scope, send, error, self.base_uri)


class BodyGuardMiddleware:
    """413 for bodies over `max_bytes`, 415 for bodies that are not JSON, 408 for bodies that
    take longer than `timeout_s` to arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int, problem_base_uri: str,
                 timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.base_uri = problem_base_uri
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            self._check_declared_length(headers.get("content-length"))
            body = await self._read_body_in_time(receive)
            if body:
                self._check_content_type(headers.get("content-type", ""))
        except ApiError as error:
            await send_problem(scope, send, error, self.base_uri)
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self, size: str) -> ApiError:
        return ApiError(413, "payload-too-large", f"the request body is {size} bytes; the "
                        f"limit is {self.max_bytes} bytes", limit_bytes=self.max_bytes)

    def _check_declared_length(self, value: str | None) -> None:
        if value is None:
            return
        try:
            declared = int(value)
        except ValueError:
            raise ApiError(400, "bad-request", f"invalid Content-Length {value!r}") from None
        if declared > self.max_bytes:
            raise self._too_large(str(declared))

    async def _read_body_in_time(self, receive: Receive) -> bytes:
        """The body within the deadline: a client that trickles it (or sends less than it
        declared) would otherwise hold its connection and this task for as long as it likes."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._read_body(receive)
        except TimeoutError:
            raise ApiError(408, "request-timeout", f"the request body did not arrive within "
                           f"{self.timeout_s:g} s", headers={"Connection": "close"}) from None

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body, refusing it as soon as it grows past the limit (chunked uploads
        declare no length, and a declared length can lie)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "bad-request", "the client disconnected mid-body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large(f"more than {self.max_bytes}")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _check_content_type(value: str) -> None:
        media = value.split(";", 1)[0].strip().lower()
        if media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json")):
            return
        shown = media or "none"
        raise ApiError(415, "unsupported-media-type", f"send the body as application/json "
                       f"(got Content-Type {shown})", accepted=["application/json"])


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the buffered body over once, then the client's later messages
    (the disconnect that streams and sync waits listen for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay

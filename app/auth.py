"""Optional API-key authentication as pure-ASGI middleware.

Off unless `TRM_API_KEYS` lists keys. Clients send `Authorization: Bearer <key>` (OpenAI-style
clients) or `X-API-Key: <key>`. Every route is guarded, `/mcp` and `/metrics` included, except
an explicit public list (probes, docs, the viewer page and its static files; `/metrics` too with
`TRM_METRICS_PUBLIC`) and CORS preflight.
Keys are kept only as SHA-256 digests and compared with `hmac.compare_digest` against every
digest, so timing reveals neither a key nor which one matched.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import unauthorized
from app.problems import send_problem

PUBLIC_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/docs", "/docs/oauth2-redirect",
                          "/openapi.json", "/"})
METRICS_PATH = "/metrics"
# The viewer's script and styles: the page must load before its user can enter a key.
PUBLIC_PREFIXES = ("/static/", "/docs-assets/")


def public_paths(metrics_public: bool) -> frozenset[str]:
    """The paths open without a key. Metrics name the models, their load and the outcome of
    every request, so they take a key unless the operator opens them (a scraper without one)."""
    return (PUBLIC_PATHS | {METRICS_PATH}) if metrics_public else PUBLIC_PATHS


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def presented_key(headers: Headers) -> str | None:
    """The key a request carries, from `Authorization: Bearer` or `X-API-Key`."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


class ApiKeyMiddleware:
    """401 + `WWW-Authenticate: Bearer` for guarded routes without a valid key."""

    def __init__(self, app: ASGIApp, keys: Iterable[str], problem_base_uri: str,
                 public_paths: frozenset[str] = PUBLIC_PATHS) -> None:
        self.app = app
        self.digests = [_digest(key) for key in keys if key]
        self.public_paths = public_paths
        self.base_uri = problem_base_uri

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def allows(self, key: str | None) -> bool:
        if key is None:
            return False
        digest = _digest(key)
        matched = False
        for known in self.digests:  # no early exit: every key costs the same comparison
            matched |= hmac.compare_digest(digest, known)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or not self.enabled or scope["method"] == "OPTIONS"
                or scope["path"] in self.public_paths
                or scope["path"].startswith(PUBLIC_PREFIXES)):
            await self.app(scope, receive, send)
            return
        key = presented_key(Headers(scope=scope))
        if self.allows(key):
            await self.app(scope, receive, send)
            return
        detail = ("missing API key: send Authorization: Bearer <key> or X-API-Key"
                  if key is None else "invalid API key")
        await send_problem(scope, send, unauthorized(detail), self.base_uri)

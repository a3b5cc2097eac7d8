"""RFC 9457 responses: FastAPI's default `{"detail": …}` handlers replaced by problem+json ones.

`install_problem_handlers` covers the service's own `ApiError`, Starlette's HTTP exceptions
(unknown route, wrong method), request validation (400 for unparsable JSON, 422 otherwise) and
uncaught exceptions (500, logged with the request id, no stack trace to the client).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope, Send

from app.errors import PROBLEM_MEDIA_TYPE, ApiError, internal

log = logging.getLogger(__name__)
_SLUGS = {400: "bad-request", 404: "not-found", 405: "method-not-allowed",
          406: "not-acceptable", 413: "payload-too-large", 415: "unsupported-media-type"}


def request_id_from(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", "-"))


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def problem_response(error: ApiError, scope: Scope, base_uri: str) -> Response:
    """The problem+json response for `error`, with its headers and the request id."""
    request_id = request_id_from(scope)
    headers = {**error.headers, "X-Request-ID": request_id}
    return Response(_encode(error.to_problem(request_id, base_uri)), status_code=error.status,
                    headers=headers, media_type=PROBLEM_MEDIA_TYPE)


async def send_problem(scope: Scope, send: Send, error: ApiError, base_uri: str) -> None:
    """Answer from a pure-ASGI middleware, before any route ran."""
    response = problem_response(error, scope, base_uri)

    async def no_receive() -> Any:  # the body is not needed to answer
        return {"type": "http.disconnect"}

    await response(scope, no_receive, send)


def validation_error(exc: RequestValidationError) -> ApiError:
    """400 for a body that is not JSON at all, else 422 listing every schema problem."""
    raw = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in raw):
        reason = next((err.get("ctx", {}).get("error") for err in raw if err.get("ctx")), None)
        detail = "the request body is not valid JSON" + (f": {reason}" if reason else "")
        return ApiError(400, "invalid-json", detail)
    entries = [_entry(err) for err in raw]
    detail = "; ".join(f"{'.'.join(map(str, e['loc'][1:] or e['loc']))}: {e['msg']}"
                       for e in entries[:3])
    return ApiError(422, "invalid-request", detail or "invalid request", errors=entries)


def _entry(err: dict[str, Any]) -> dict[str, Any]:
    msg = str(err.get("msg", "invalid"))
    # pydantic prefixes messages of custom validators; the client needs only the sentence.
    msg = msg.removeprefix("Value error, ")
    return {"loc": list(err.get("loc", ())), "msg": msg, "type": err.get("type", "invalid")}


def install_problem_handlers(app: FastAPI, base_uri: str) -> None:
    """Route every error the app can raise through `problem_response`."""

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return problem_response(exc, request.scope, base_uri)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        slug = _SLUGS.get(exc.status_code, "http-error")
        error = ApiError(exc.status_code, slug, str(exc.detail), headers=dict(exc.headers or {}))
        return problem_response(error, request.scope, base_uri)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem_response(validation_error(exc), request.scope, base_uri)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.error("unhandled error in %s %s (request %s)", request.method, request.url.path,
                  request_id_from(request.scope), exc_info=exc)
        return problem_response(internal(), request.scope, base_uri)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_crash)

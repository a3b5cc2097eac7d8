"""Exceptions for the service's RFC 9457 problem answers, one subclass per status a caller may
want to catch on its own."""

from __future__ import annotations

from typing import Any


class TRMError(Exception):
    """A problem answer: `status`, `title`, `detail` and the field-level `errors`."""

    def __init__(self, status: int, title: str, detail: str,
                 errors: list[dict[str, Any]] | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.body = body or {}


class BadRequest(TRMError):
    """400, 413, 415: the request itself was malformed."""


class Unauthorized(TRMError):
    """401: a missing or wrong API key."""


class NotFound(TRMError):
    """404: unknown task, model or job."""


class Conflict(TRMError):
    """409: e.g. cancelling a job that already finished."""


class InvalidPuzzle(TRMError):
    """422: a malformed puzzle or an option out of range; `detail` says which."""


class Overloaded(TRMError):
    """503: queue full, not ready or draining; `retry_after_s` says when to come back."""

    def __init__(self, *args: Any, retry_after_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after_s = retry_after_s


class Timeout(TRMError):
    """504: the deadline passed before the model finished."""


_BY_STATUS: dict[int, type[TRMError]] = {400: BadRequest, 413: BadRequest, 415: BadRequest,
                                         401: Unauthorized, 404: NotFound, 409: Conflict,
                                         422: InvalidPuzzle, 504: Timeout}


def error_from_problem(status: int, body: dict[str, Any] | None,
                       retry_after_s: float | None = None) -> TRMError:
    """The exception for a problem body (or a bare status when the body was not JSON)."""
    body = body or {}
    title = str(body.get("title") or f"HTTP {status}")
    detail = str(body.get("detail") or title)
    errors = body.get("errors") if isinstance(body.get("errors"), list) else None
    if status == 503:
        return Overloaded(status, title, detail, errors, body, retry_after_s=retry_after_s)
    return _BY_STATUS.get(status, TRMError)(status, title, detail, errors, body)

"""API errors as RFC 9457 problem details, independent of the web framework.

Service code raises `ApiError`; the HTTP layer (`app.problems`) turns it into an
`application/problem+json` response, and the SSE layer puts the same object into `solve.failed`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ApiError(Exception):
    """An error with an HTTP status, a stable `slug` (the problem type) and a human `detail`.

    `errors` lists field-level problems as `{"loc": [...], "msg": ...}`; `extra` adds members to
    the problem object; `headers` are sent with the response (Retry-After, WWW-Authenticate).
    """

    def __init__(self, status: int, slug: str, detail: str, *, title: str | None = None,
                 errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title or _reason(status)
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})
        self.extra = extra
        self.body: dict[str, Any] | None = None

    @classmethod
    def from_problem(cls, body: dict[str, Any]) -> ApiError:
        """Re-raise a problem built earlier (a job's stored error) exactly as it was."""
        retry = body.get("retry_after_s")
        error = cls(int(body["status"]), str(body["type"]).rsplit("/", 1)[-1],
                    str(body["detail"]), title=body.get("title"),
                    headers={"Retry-After": str(retry)} if retry else None)
        error.body = body
        return error

    def to_problem(self, request_id: str, base_uri: str) -> dict[str, Any]:
        """The problem object; `request_id` ties it to logs and the X-Request-ID header."""
        if self.body is not None:
            return self.body
        return problem(self.status, self.slug, self.detail, request_id, base_uri,
                       title=self.title, errors=self.errors, **self.extra)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Client Closed Request" if status == 499 else "Error"


def problem(status: int, slug: str, detail: str, request_id: str, base_uri: str, *,
            title: str | None = None, errors: list[dict[str, Any]] | None = None,
            **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem object with this service's extension members."""
    body: dict[str, Any] = {
        "type": f"{base_uri}{slug}",
        "title": title or _reason(status),
        "status": status,
        "detail": detail,
        "instance": f"urn:request:{request_id}",
        "request_id": request_id,
    }
    if errors:
        body["errors"] = errors
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


# ---------------------------------------------------------------------------- common problems


def not_found(what: str, detail: str, **extra: Any) -> ApiError:
    return ApiError(404, f"unknown-{what}", detail, **extra)


def invalid(detail: str, loc: list[str | int], **entry: Any) -> ApiError:
    """A 422 naming one offending field; `entry` adds members to its error entry."""
    return ApiError(422, "invalid-request", detail,
                    errors=[{"loc": ["body", *loc], "msg": detail, **entry}])


def unavailable(reason: str, detail: str, retry_after_s: int) -> ApiError:
    """A 503 the client should retry: queue full, draining, not ready."""
    return ApiError(503, reason.replace("_", "-"), detail,
                    headers={"Retry-After": str(retry_after_s)}, retry_after_s=retry_after_s,
                    reason=reason)


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def conflict(detail: str) -> ApiError:
    return ApiError(409, "conflict", detail)


def timeout(detail: str) -> ApiError:
    return ApiError(504, "deadline-exceeded", detail)


def internal(detail: str = "internal error; see the server log for this request id") -> ApiError:
    return ApiError(500, "internal-error", detail)


def client_gone() -> ApiError:
    """The client hung up before its answer was ready; nobody reads this response."""
    return ApiError(499, "client-closed-request", "the client closed the connection")

"""What the sync and async clients share: request bodies, headers, problem parsing, the retry
policy for 503 answers, and an incremental server-sent-events parser."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from trm_client.errors import TRMError, error_from_problem
from trm_client.models import SolveResult, StepEvent

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL = ("solve.completed", "solve.failed", "solve.cancelled")


def headers(api_key: str | None) -> dict[str, str]:
    result = {"User-Agent": "trm-client/0.1"}
    if api_key:
        result["Authorization"] = f"Bearer {api_key}"
    return result


def solve_body(puzzle: Any, options: dict[str, Any], *, stream: bool = False,
               task: str | None = None) -> dict[str, Any]:
    """A request body: a string puzzle goes in `puzzle`, a nested list in `grid`."""
    body: dict[str, Any] = {"grid" if isinstance(puzzle, list) else "puzzle": puzzle}
    body.update({key: value for key, value in options.items() if value is not None})
    if stream:
        body["stream"] = True
    if task is not None:
        body["task"] = task
    return body


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def problem_error(response: httpx.Response) -> TRMError:
    """The exception for an error answer whose body was read."""
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500] or response.reason_phrase}
    return error_from_problem(response.status_code, body if isinstance(body, dict) else None,
                              retry_after(response))


@dataclass(frozen=True)
class RetryPolicy:
    """Retry 503 answers (queue full, not ready) up to `max_retries` times, waiting what
    `Retry-After` says but never more than `max_wait_s` at once."""

    max_retries: int = 3
    max_wait_s: float = 10.0
    default_wait_s: float = 1.0

    def delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None to give up."""
        if response.status_code != 503 or attempt >= self.max_retries:
            return None
        wait = retry_after(response)
        return min(self.max_wait_s, wait if wait is not None else self.default_wait_s)


@dataclass
class SSEParser:
    """Feeds text lines, collects finished events as (name, data)."""

    _name: str = "message"
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str, dict[str, Any]] | None:
        if line == "":
            if not self._data:
                return None
            event = (self._name, json.loads("\n".join(self._data)))
            self._name, self._data = "message", []
            return event
        if line.startswith(":"):
            return None
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            self._name = value
        elif key == "data":
            self._data.append(value)
        return None


def handle_event(name: str, data: dict[str, Any]) -> StepEvent | SolveResult | None:
    """A step, the final result, or None for events a caller need not see; failures raise."""
    if name == "solve.step":
        return StepEvent.from_json(data)
    if name == "solve.completed":
        return SolveResult.from_json(data)
    if name == "solve.failed":
        raise error_from_problem(int(data.get("status", 500)), data)
    if name == "solve.cancelled":
        raise TRMError(499, "Cancelled", str(data.get("reason", "cancelled")), body=data)
    return None

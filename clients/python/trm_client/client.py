"""The synchronous client: `Client(base_url, api_key=...)`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from trm_client import _common as common
from trm_client.models import Job, ModelInfo, SolveResult, StepEvent


class SolveStream:
    """Iterates the step events of a solve or job; `result` is set once the stream ends."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.result: SolveResult | None = None

    def __iter__(self) -> Iterator[StepEvent]:
        parser = common.SSEParser()
        for line in self._lines:
            event = parser.feed(line)
            if event is None:
                continue
            item = common.handle_event(*event)
            if isinstance(item, StepEvent):
                yield item
            elif isinstance(item, SolveResult):
                self.result = item
                return


class Client:
    """Solve puzzles, stream their steps, run jobs. Retries 503 answers per `Retry-After`."""

    def __init__(self, base_url: str = common.DEFAULT_URL, *, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 3, max_retry_wait_s: float = 10.0,
                 http: httpx.Client | None = None) -> None:
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self._headers = common.headers(api_key)
        self._retry = common.RetryPolicy(max_retries, max_retry_wait_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self._retry.max_retries + 1):
            response = self._http.request(method, path, headers=self._headers, **kwargs)
            if response.is_success:
                return response
            delay = self._retry.delay(response, attempt)
            if delay is None:
                raise common.problem_error(response)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _events(self, method: str, path: str, **kwargs: Any) -> Iterator[str]:
        """The lines of an event stream, opened with the same retries as other calls."""
        headers = {**self._headers, "Accept": "text/event-stream"}
        for attempt in range(self._retry.max_retries + 1):
            with self._http.stream(method, path, headers=headers, **kwargs) as response:
                if response.is_success:
                    yield from response.iter_lines()
                    return
                response.read()
                delay = self._retry.delay(response, attempt)
                if delay is None:
                    raise common.problem_error(response)
            time.sleep(delay)

    # ------------------------------------------------------------------------------ solving

    def solve(self, task: str, puzzle: Any, **options: Any) -> SolveResult:
        """Solve and wait; options: max_steps, halting, attempts, model, timeout_ms ..."""
        response = self._request("POST", f"/v1/solve/{task}",
                                 json=common.solve_body(puzzle, options))
        return SolveResult.from_json(response.json())

    def stream(self, task: str, puzzle: Any, **options: Any) -> SolveStream:
        """Solve, yielding every supervision step; the stream's `result` holds the answer."""
        body = common.solve_body(puzzle, options, stream=True)
        return SolveStream(self._events("POST", f"/v1/solve/{task}", json=body))

    # ------------------------------------------------------------------------------ jobs

    def submit(self, task: str, puzzle: Any, **options: Any) -> Job:
        response = self._request("POST", "/v1/jobs",
                                 json=common.solve_body(puzzle, options, task=task))
        return Job.from_json(response.json())

    def get(self, job_id: str) -> Job:
        return Job.from_json(self._request("GET", f"/v1/jobs/{job_id}").json())

    def events(self, job_id: str, after: int = -1) -> SolveStream:
        """A job's steps after step `after` (all with -1), then live ones until it ends."""
        params = {"last_event_id": after} if after >= 0 else None
        return SolveStream(self._events("GET", f"/v1/jobs/{job_id}/events", params=params))

    def cancel(self, job_id: str) -> None:
        """Cancel a running job; raises `Conflict` when it already finished."""
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def models(self) -> list[ModelInfo]:
        return [ModelInfo.from_json(m) for m in self._request("GET", "/v1/models").json()["data"]]

"""The asynchronous client: `AsyncClient(base_url, api_key=...)`, the same calls awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from trm_client import _common as common
from trm_client.models import Job, ModelInfo, SolveResult, StepEvent


class AsyncSolveStream:
    """Async-iterates the step events of a solve or job; `result` is set once it ends."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines
        self.result: SolveResult | None = None

    async def __aiter__(self) -> AsyncIterator[StepEvent]:
        parser = common.SSEParser()
        async for line in self._lines:
            event = parser.feed(line)
            if event is None:
                continue
            item = common.handle_event(*event)
            if isinstance(item, StepEvent):
                yield item
            elif isinstance(item, SolveResult):
                self.result = item
                return


class AsyncClient:
    """Solve puzzles, stream their steps, run jobs. Retries 503 answers per `Retry-After`."""

    def __init__(self, base_url: str = common.DEFAULT_URL, *, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 3, max_retry_wait_s: float = 10.0,
                 http: httpx.AsyncClient | None = None) -> None:
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._headers = common.headers(api_key)
        self._retry = common.RetryPolicy(max_retries, max_retry_wait_s)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self._retry.max_retries + 1):
            response = await self._http.request(method, path, headers=self._headers, **kwargs)
            if response.is_success:
                return response
            delay = self._retry.delay(response, attempt)
            if delay is None:
                raise common.problem_error(response)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _events(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[str]:
        headers = {**self._headers, "Accept": "text/event-stream"}
        for attempt in range(self._retry.max_retries + 1):
            async with self._http.stream(method, path, headers=headers, **kwargs) as response:
                if response.is_success:
                    async for line in response.aiter_lines():
                        yield line
                    return
                await response.aread()
                delay = self._retry.delay(response, attempt)
                if delay is None:
                    raise common.problem_error(response)
            await asyncio.sleep(delay)

    async def solve(self, task: str, puzzle: Any, **options: Any) -> SolveResult:
        response = await self._request("POST", f"/v1/solve/{task}",
                                       json=common.solve_body(puzzle, options))
        return SolveResult.from_json(response.json())

    def stream(self, task: str, puzzle: Any, **options: Any) -> AsyncSolveStream:
        body = common.solve_body(puzzle, options, stream=True)
        return AsyncSolveStream(self._events("POST", f"/v1/solve/{task}", json=body))

    async def submit(self, task: str, puzzle: Any, **options: Any) -> Job:
        response = await self._request("POST", "/v1/jobs",
                                       json=common.solve_body(puzzle, options, task=task))
        return Job.from_json(response.json())

    async def get(self, job_id: str) -> Job:
        return Job.from_json((await self._request("GET", f"/v1/jobs/{job_id}")).json())

    def events(self, job_id: str, after: int = -1) -> AsyncSolveStream:
        params = {"last_event_id": after} if after >= 0 else None
        return AsyncSolveStream(self._events("GET", f"/v1/jobs/{job_id}/events", params=params))

    async def cancel(self, job_id: str) -> None:
        await self._request("DELETE", f"/v1/jobs/{job_id}")

    async def models(self) -> list[ModelInfo]:
        body = (await self._request("GET", "/v1/models")).json()
        return [ModelInfo.from_json(m) for m in body["data"]]

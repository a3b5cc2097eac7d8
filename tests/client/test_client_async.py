"""`trm_client.AsyncClient` against the real service, plus the 503 retry policy."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from in_thread import RunningServer, serve_in_thread
from trm_client import AsyncClient, Client, Conflict, Overloaded

from app.settings import Settings

README_PUZZLE = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."


def test_async_solve_stream_jobs_models(server: RunningServer) -> None:
    async def main() -> None:
        async with AsyncClient(server.base_url) as trm:
            results = await asyncio.gather(*(trm.solve("sudoku", README_PUZZLE)
                                             for _ in range(3)))
            assert all(r.solved for r in results)
            stream = trm.stream("sudoku", README_PUZZLE, halting="never", max_steps=3)
            assert [s.step async for s in stream] == [1, 2, 3]
            assert stream.result is not None and stream.result.valid
            job = await trm.submit("sudoku", README_PUZZLE)
            steps = [s.step async for s in trm.events(job.id)]
            assert steps and (await trm.get(job.id)).status == "succeeded"
            with pytest.raises(Conflict):
                await trm.cancel(job.id)
            assert [m.task for m in await trm.models()] == ["sudoku"]

    asyncio.run(main())


def test_retries_503_honouring_retry_after_then_gives_up() -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(503, headers={"Retry-After": "0"},
                                  json={"status": 503, "title": "Service Unavailable",
                                        "detail": "the queue is full; retry later"})
        return httpx.Response(200, json={"object": "list", "data": []})

    http = httpx.Client(base_url="http://trm.test", transport=httpx.MockTransport(answer))
    with Client(http=http, max_retries=3) as trm:
        assert trm.models() == []
    assert len(calls) == 3
    calls.clear()
    http = httpx.Client(base_url="http://trm.test", transport=httpx.MockTransport(answer))
    with Client(http=http, max_retries=1) as trm, pytest.raises(Overloaded) as error:
        trm.models()
    assert error.value.retry_after_s == 0 and "queue is full" in error.value.detail


def test_a_draining_service_raises_overloaded_with_retry_after(
        shipped_settings: Settings) -> None:
    with serve_in_thread(shipped_settings) as running:
        running.begin_drain()
        with Client(running.base_url, max_retries=0) as trm:
            for _ in range(200):
                try:
                    trm.solve("sudoku", README_PUZZLE)
                except Overloaded as error:
                    assert error.retry_after_s == shipped_settings.retry_after_s
                    assert "shutting down" in error.detail
                    break
            else:
                pytest.fail("the draining service kept answering")

"""Admission and lifecycle: 503 when the queue is full, not ready or draining; 504 past the
deadline; readiness; and the drain on shutdown (finish in time, else fail with "shutdown")."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable

import httpx
from http_helpers import PUZZLE, TERMINAL, TickControl, assert_problem, parse_sse, wait_until
from in_thread import RunningServer

from app.main import create_app
from app.settings import Settings

SOLVE = "/v1/solve/sudoku"
Starter = Callable[..., tuple[RunningServer, httpx.Client]]


def _engine(running: RunningServer):  # type: ignore[no-untyped-def]
    return running.service.registry.entries["trm-sudoku-tiny@1"].engine


def test_full_queue_is_503_with_retry_after(start_server: Starter, ticks: TickControl) -> None:
    running, http = start_server(max_batch_size=1, max_queue_size=1)
    ticks.gate.clear()  # the engine stops after its first step: one job running, none leaving
    job = {"task": "sudoku", "puzzle": PUZZLE, "halting": "never"}
    assert http.post("/v1/jobs", json=job).status_code == 202
    wait_until(lambda: _engine(running).active_slots == 1 and len(ticks.stats) >= 1)
    assert http.post("/v1/jobs", json=job).status_code == 202  # fills the queue
    for response in (http.post("/v1/jobs", json=job), http.post(SOLVE, json={"puzzle": PUZZLE})):
        body = assert_problem(response, 503)
        assert response.headers["retry-after"] == "2"
        assert body["reason"] == "queue_full" and body["retry_after_s"] == 2
    metrics = http.get("/metrics").text
    assert 'trm_rejections_total{reason="queue_full",task="sudoku"} 2.0' in metrics
    ticks.gate.set()


def test_many_held_sync_requests_overflow(start_server: Starter, ticks: TickControl) -> None:
    running, http = start_server(max_batch_size=1, max_queue_size=1)
    # The first job holds the only slot until the other five are answered or queued, so which
    # are refused does not depend on how fast this machine runs a step.
    ticks.gate.clear()
    body = {"puzzle": PUZZLE, "halting": "never"}

    def post() -> int:
        return http.post(SOLVE, json=body).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        first = pool.submit(post)
        wait_until(lambda: _engine(running).active_slots == 1 and len(ticks.stats) >= 1)
        rest = [pool.submit(post) for _ in range(5)]
        wait_until(lambda: sum(f.done() for f in rest) == 4)  # one queued, four refused
        ticks.gate.set()
        statuses = [first.result()] + sorted(f.result() for f in rest)
    assert statuses == [200, 200, 503, 503, 503, 503]


def test_deadline_is_504(start_server: Starter, ticks: TickControl) -> None:
    _, http = start_server()
    ticks.delay_s = 0.1
    response = http.post(SOLVE, json={"puzzle": PUZZLE, "halting": "never", "timeout_ms": 20})
    body = assert_problem(response, 504)
    assert "deadline" in body["detail"]
    metrics = http.get("/metrics").text
    assert 'outcome="timeout",task="sudoku"} 1.0' in metrics


def test_readyz_200_after_startup(client: httpx.Client, runner: str) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    # the local runner warms its engines; the broker runner needs Redis (workers warm theirs)
    own_check = {"warmed_up": "ok"} if runner == "local" else {"redis": "ok"}
    assert response.json()["checks"] == {"models_loaded": "ok", **own_check,
                                         "workers_alive": "ok", "not_draining": "ok"}
    assert client.get("/healthz").status_code == 200
    assert client.get("/livez").json() == {"status": "alive"}


def test_not_ready_before_startup(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings())  # lifespan never runs: nothing loaded, no workers
    transport = httpx.ASGITransport(app=app)

    async def probe() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            return (await http.get("/readyz"), await http.post(SOLVE, json={"puzzle": PUZZLE}),
                    await http.get("/livez"))

    ready, solve, live = asyncio.run(probe())
    body = assert_problem(ready, 503)
    assert body["checks"]["models_loaded"] == "loading"
    assert assert_problem(solve, 503)["reason"] == "not_ready"
    assert live.status_code == 200


def _stream_until_first_step(http: httpx.Client, sink: list[dict[str, object]],
                             first: threading.Event) -> None:
    body = {"puzzle": PUZZLE, "halting": "never", "stream": True}
    with http.stream("POST", SOLVE, json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        sink.extend(parse_sse(lines, stop_at={"solve.step"}))
        first.set()
        sink.extend(parse_sse(lines, stop_at=TERMINAL))


def test_draining_refuses_new_work_and_fails_slow_jobs(start_server: Starter,
                                                        ticks: TickControl) -> None:
    running, http = start_server(shutdown_timeout_s=0.2)
    ticks.delay_s = 0.15  # four steps need 0.6 s; the drain allows 0.2 s
    events: list[dict[str, object]] = []
    first = threading.Event()
    streamer = threading.Thread(target=_stream_until_first_step, args=(http, events, first))
    streamer.start()
    assert first.wait(10)
    running.begin_drain()
    wait_until(lambda: running.service.draining)
    ready = http.get("/readyz")
    assert assert_problem(ready, 503)["checks"]["not_draining"] == "draining"
    refused = http.post(SOLVE, json={"puzzle": PUZZLE})
    assert assert_problem(refused, 503)["reason"] == "draining"
    assert refused.headers["retry-after"] == "2"
    streamer.join(10)
    failed = events[-1]
    assert failed["event"] == "solve.failed"
    data = failed["data"]
    assert isinstance(data, dict) and data["status"] == 503 and data["reason"] == "shutdown"
    assert _engine(running).active_slots == 0


def test_shutdown_lets_in_flight_jobs_finish(start_server: Starter,
                                             ticks: TickControl) -> None:
    running, http = start_server(shutdown_timeout_s=10)
    ticks.delay_s = 0.1
    events: list[dict[str, object]] = []
    first = threading.Event()
    streamer = threading.Thread(target=_stream_until_first_step, args=(http, events, first))
    streamer.start()
    assert first.wait(10)
    running.stop()  # what SIGTERM does: uvicorn shutdown, which starts the drain
    streamer.join(10)
    assert not running.thread.is_alive()
    assert events[-1]["event"] == "solve.completed"
    assert [e["event"] for e in events].count("solve.step") == 4


def test_stop_after_traffic_stops_the_workers(start_server: Starter) -> None:
    running, http = start_server()
    assert http.post(SOLVE, json={"puzzle": PUZZLE}).status_code == 200
    running.stop(10)
    assert not running.thread.is_alive()
    assert all(not e.thread.alive for e in running.service.registry.entries.values())

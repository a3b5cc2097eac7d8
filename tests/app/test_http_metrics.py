"""Metrics that move with traffic, shared engine ticks under concurrency, and a disconnecting
stream client freeing its slot."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import httpx
from http_helpers import MAX_STEPS, MODEL_ID, PUZZLE, TickControl, metric_value, wait_until
from in_thread import RunningServer

from app.metrics import Metrics
from trm_core.engine import TickStats

SOLVE = "/v1/solve/sudoku"
LABELS = {"task": "sudoku", "model": MODEL_ID}
Starter = Callable[..., tuple[RunningServer, httpx.Client]]


def test_series_exist_before_any_request(start_server: Starter) -> None:
    _, http = start_server()
    text = http.get("/metrics").text
    for name in ("trm_requests_total", "trm_request_duration_seconds_bucket",
                 "trm_queue_wait_seconds_bucket", "trm_time_to_first_step_seconds_bucket",
                 "trm_step_duration_seconds_bucket", "trm_batch_size_bucket",
                 "trm_steps_per_request_bucket", "trm_queue_depth", "trm_active_slots",
                 "trm_rejections_total", "trm_sse_streams", "trm_model_info",
                 "trm_build_info", "trm_model_load_seconds", "trm_cache_requests_total"):
        assert f"\n{name}{{" in text, name
    assert metric_value(http, "trm_requests_total", outcome="rejected", endpoint="solve",
                        **LABELS) == 0


def test_counters_and_histograms_move(client: httpx.Client, runner: str) -> None:
    """Request counters move on every replica; engine tick metrics (batch sizes, slots) on
    whichever process runs the engine: this one for the local runner, the broker worker's own
    /metrics otherwise (tests/broker)."""
    solved = {"endpoint": "solve", **LABELS}
    before = {o: metric_value(client, "trm_requests_total", outcome=o, **solved)
              for o in ("solved", "unsolved", "invalid")}
    batches = metric_value(client, "trm_batch_size_count", **LABELS)
    durations = metric_value(client, "trm_request_duration_seconds_count", **solved)
    first_steps = metric_value(client, "trm_time_to_first_step_seconds_count", **LABELS)
    steps = metric_value(client, "trm_steps_per_request_sum", **LABELS)
    assert client.post(SOLVE, json={"puzzle": PUZZLE, "halting": "never"}).status_code == 200
    assert client.post(SOLVE, json={"puzzle": PUZZLE[:10]}).status_code == 422
    after = {o: metric_value(client, "trm_requests_total", outcome=o, **solved)
             for o in ("solved", "unsolved", "invalid")}
    assert after["solved"] + after["unsolved"] == before["solved"] + before["unsolved"] + 1
    assert after["invalid"] == before["invalid"] + 1
    if runner == "local":
        assert metric_value(client, "trm_batch_size_count", **LABELS) >= batches + MAX_STEPS
    assert metric_value(client, "trm_request_duration_seconds_count", **solved) == durations + 1
    assert metric_value(client, "trm_time_to_first_step_seconds_count", **LABELS) \
        == first_steps + 1
    assert metric_value(client, "trm_steps_per_request_sum", **LABELS) == steps + MAX_STEPS
    assert metric_value(client, "trm_active_slots", **LABELS) == 0
    assert metric_value(client, "trm_sse_streams", endpoint="solve") == 0


def test_concurrent_requests_share_engine_ticks(start_server: Starter,
                                                ticks: TickControl) -> None:
    running, http = start_server()
    ticks.delay_s = 0.03  # steps slow enough for eight arrivals to overlap

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as client:
            calls = [client.post(SOLVE, json={"puzzle": PUZZLE, "halting": "never"})
                     for _ in range(8)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    assert asyncio.run(burst()) == [200] * 8
    assert ticks.max_batch > 1
    count = metric_value(http, "trm_batch_size_count", **LABELS)
    total = metric_value(http, "trm_batch_size_sum", **LABELS)
    assert total == 8 * MAX_STEPS and count < total  # fewer ticks than steps: shared batches


def _raw_stream_then_hang_up(port: int) -> bytes:
    """Open a POST stream over a plain socket, read until the first step, then close it."""
    body = b'{"puzzle": "%s", "halting": "never", "stream": true}' % PUZZLE.encode()
    request = (b"POST /v1/solve/sudoku HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
               % (len(body), body))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"event: solve.step" not in received:
            chunk = sock.recv(65536)
            assert chunk, "server closed the stream early"
            received += chunk
    return received


def test_disconnecting_stream_client_frees_its_slot(start_server: Starter,
                                                    ticks: TickControl) -> None:
    running, http = start_server()
    # The engine holds after its first step until the hang-up is seen, so the count of steps
    # below does not depend on how fast this machine notices a closed socket.
    ticks.gate.clear()
    port = int(running.base_url.rsplit(":", 1)[1])
    received = _raw_stream_then_hang_up(port)
    assert b"200 OK" in received
    wait_until(lambda: metric_value(http, "trm_requests_total", outcome="cancelled",
                                    endpoint="solve", **LABELS) == 1)
    ticks.gate.set()
    engine = running.service.registry.entries[MODEL_ID].engine
    wait_until(lambda: engine.active_slots == 0)
    assert sum(s.batch_size for s in ticks.stats) == 1  # freed at the next step, not the last
    assert metric_value(http, "trm_sse_streams", endpoint="solve") == 0
    assert metric_value(http, "trm_steps_per_request_count", **LABELS) == 0


def test_metrics_registries_are_per_instance() -> None:
    first, second = Metrics(), Metrics()
    bound = first.bind_model("m@1", "sudoku", "cpu")
    second.bind_model("m@1", "sudoku", "cpu")
    bound.finished("solve", "solved", duration_s=0.1, queue_s=0.01, steps=3)
    bound.observe_tick(TickStats(batch_size=5, duration_s=0.002, queue_depth=0, active_slots=5))
    first.register_model("m@1", "sudoku", 1, "ab" * 32, "cpu", 0.5, lambda: (2, 5))
    labels = {"task": "sudoku", "model": "m@1", "endpoint": "solve", "outcome": "solved"}
    assert first.registry.get_sample_value("trm_requests_total", labels) == 1
    assert second.registry.get_sample_value("trm_requests_total", labels) == 0
    assert first.registry.get_sample_value(
        "trm_batch_size_sum", {"task": "sudoku", "model": "m@1", "device": "cpu"}) == 5
    assert first.registry.get_sample_value(
        "trm_queue_depth", {"task": "sudoku", "model": "m@1"}) == 2
    assert b"trm_build_info{" in first.render()

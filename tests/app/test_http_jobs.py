"""The jobs API: 202 + Location, polling, resumable event streams, cancellation, expiry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
from http_helpers import (
    MAX_STEPS,
    PUZZLE,
    TERMINAL,
    TickControl,
    assert_problem,
    parse_sse,
    wait_until,
)
from in_thread import RunningServer

from app.jobs import JobStore, TrackedJob

JOB = {"task": "sudoku", "puzzle": PUZZLE, "halting": "never"}


def _create(http: httpx.Client, **extra: object) -> tuple[str, dict[str, object]]:
    response = http.post("/v1/jobs", json={**JOB, **extra})
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    body = response.json()
    assert location == f"/v1/jobs/{body['id']}"
    assert body["status"] in ("queued", "running") and body["task"] == "sudoku"
    return location, body


def _finished(http: httpx.Client, location: str) -> dict[str, object]:
    wait_until(lambda: http.get(location).json()["status"] not in ("queued", "running"))
    body: dict[str, object] = http.get(location).json()
    return body


def _events(http: httpx.Client, location: str, **headers: str) -> list[dict[str, object]]:
    with http.stream("GET", f"{location}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse_sse(response.iter_lines(), stop_at=TERMINAL)


def test_create_poll_and_result(client: httpx.Client) -> None:
    location, _ = _create(client)
    job = _finished(client, location)
    assert job["status"] == "succeeded"
    result = job["result"]
    assert isinstance(result, dict) and result["status"] in ("solved", "unsolved")
    assert result["steps_used"] == MAX_STEPS and "finished_at" in job


def test_events_replay_a_finished_job(client: httpx.Client) -> None:
    location, _ = _create(client)
    _finished(client, location)
    events = _events(client, location)
    assert [e["id"] for e in events] == list(range(MAX_STEPS + 2))
    assert events[0]["event"] == "solve.accepted" and events[-1]["event"] == "solve.completed"


def test_resume_with_last_event_id(client: httpx.Client) -> None:
    location, _ = _create(client)
    _finished(client, location)
    resumed = _events(client, location, **{"Last-Event-ID": "2"})
    assert [e["id"] for e in resumed] == list(range(3, MAX_STEPS + 2))
    with client.stream("GET", f"{location}/events?last_event_id={MAX_STEPS}") as response:
        tail = parse_sse(response.iter_lines(), stop_at=TERMINAL)
    assert [e["event"] for e in tail] == ["solve.completed"]


def test_events_follow_a_running_job_live(start_server: Callable[..., tuple[RunningServer,
                                                                            httpx.Client]],
                                          ticks: TickControl) -> None:
    _, http = start_server()
    ticks.delay_s = 0.05
    location, _ = _create(http)
    events = _events(http, location)
    assert [e["event"] for e in events] == (["solve.accepted"] + ["solve.step"] * MAX_STEPS
                                            + ["solve.completed"])


def test_closing_the_events_stream_does_not_cancel(
        start_server: Callable[..., tuple[RunningServer, httpx.Client]],
        ticks: TickControl) -> None:
    _, http = start_server()
    ticks.delay_s = 0.05
    location, _ = _create(http)
    with http.stream("GET", f"{location}/events") as response:
        first = parse_sse(response.iter_lines(), stop_at={"solve.step"})
    assert first[-1]["event"] == "solve.step"
    assert _finished(http, location)["status"] == "succeeded"


def test_quiet_streams_get_keep_alive_pings(start_server: Callable[..., tuple[RunningServer,
                                                                             httpx.Client]],
                                            ticks: TickControl) -> None:
    _, http = start_server(sse_ping_s=0.05)
    ticks.delay_s = 0.2  # steps arrive far apart; pings fill the silence
    location, _ = _create(http)
    with http.stream("GET", f"{location}/events") as response:
        lines = list(response.iter_lines())
    assert lines[0] == "retry: 2000"
    assert ": ping" in lines
    assert parse_sse(iter(lines))[-1]["event"] == "solve.completed"


def test_cancel_then_conflict(start_server: Callable[..., tuple[RunningServer, httpx.Client]],
                              ticks: TickControl) -> None:
    running, http = start_server()
    ticks.gate.clear()  # hold the engine after its first step so the job cannot finish
    location, _ = _create(http)
    wait_until(lambda: len(ticks.stats) >= 1)
    response = http.delete(location)
    assert response.status_code == 204 and response.content == b""
    assert http.get(location).json()["status"] == "cancelled"
    assert_problem(http.delete(location), 409)
    ticks.gate.set()
    events = _events(http, location)
    assert events[-1]["event"] == "solve.cancelled"
    wait_until(lambda: running.service.registry.entries["trm-sudoku-tiny@1"]
               .engine.active_slots == 0)


def test_store_forgets_finished_jobs_after_the_ttl() -> None:
    now = [100.0]
    store = JobStore(ttl_s=10, clock=lambda: now[0])
    running = store.create("job", "sudoku", "m@1", 4, "req", keep_events=True)
    done = store.create("job", "sudoku", "m@1", 4, "req", keep_events=True)
    solve = store.create("solve", "sudoku", "m@1", 4, "req", keep_events=False)
    store.finish(done, "succeeded", "solved", "solve.completed", {})
    assert store.get(solve.id) is None  # sync solves are never addressable
    now[0] += 9.9
    assert store.sweep() == 0 and store.get(done.id) is done
    now[0] += 0.2
    assert store.sweep() == 1 and store.get(done.id) is None and store.get(running.id)


def _finished_job(store: JobStore, steps: int = 4) -> TrackedJob:
    record = store.create("job", "sudoku", "m@1", steps, "req", keep_events=True)
    store.publish(record, "solve.accepted", {}, event_id=0)
    for step in range(1, steps + 1):
        store.publish(record, "solve.step", {"grid": PUZZLE}, event_id=step)
    result = {"status": "unsolved", "answer": PUZZLE}
    store.finish(record, "succeeded", "unsolved", "solve.completed", result, result=result)
    return record


def test_store_caps_finished_jobs_by_count() -> None:
    store = JobStore(ttl_s=600, max_jobs=3)
    running = store.create("job", "sudoku", "m@1", 4, "req", keep_events=True)
    done = [_finished_job(store) for _ in range(5)]
    assert [store.get(r.id) for r in done] == [None, None, *done[2:]]
    assert store.get(running.id) is running  # unfinished jobs are never dropped
    assert all(len(r.events) == 6 for r in done[2:])  # under the byte cap: whole logs


def test_store_caps_finished_jobs_by_bytes_keeping_results_and_terminal_events() -> None:
    whole = _finished_job(JobStore(ttl_s=600)).events
    log_bytes = sum(len(json.dumps(e.data, separators=(",", ":"))) for e in whole)
    store = JobStore(ttl_s=600, max_bytes=int(2.5 * log_bytes))
    done = [_finished_job(store) for _ in range(3)]
    assert [len(r.events) for r in done] == [1, 6, 6]  # the oldest log shrank first
    done += [_finished_job(store) for _ in range(30)]
    assert store.finished_bytes <= 2.5 * log_bytes
    kept = [r for r in done if store.get(r.id)]
    assert kept == done[-len(kept):] and len(kept) < len(done)  # the oldest jobs went
    shrunk = [r for r in kept if len(r.events) == 1]
    assert shrunk == kept  # every log shrank before the first job went
    for record in shrunk:
        assert record.snapshot()["result"] == {"status": "unsolved", "answer": PUZZLE}
        replay, queue = store.subscribe(record, after=2)  # a client resuming mid-job
        assert [e.name for e in replay] == ["solve.completed"] and queue is None
    tiny = JobStore(ttl_s=600, max_bytes=1)
    last = [_finished_job(tiny) for _ in range(3)][-1]
    assert len(tiny) == 1 and tiny.get(last.id) is last  # the last one always stays
    assert [e.name for e in last.events] == ["solve.completed"]


def test_job_store_caps_apply_over_http(
        start_server: Callable[..., tuple[RunningServer, httpx.Client]]) -> None:
    _, http = start_server(job_store_max_jobs=2)
    locations = []
    for _ in range(3):
        locations.append(_create(http)[0])
        _finished(http, locations[-1])
    assert_problem(http.get(locations[0]), 404)
    for location in locations[1:]:
        assert http.get(location).json()["status"] == "succeeded"
        assert _events(http, location, **{"Last-Event-ID": "1"})[-1]["event"] == \
            "solve.completed"


def test_store_replays_after_an_id_and_streams_live() -> None:
    async def scenario() -> None:
        store = JobStore(ttl_s=10)
        record = store.create("job", "sudoku", "m@1", 4, "req", keep_events=True)
        for step in range(3):
            store.publish(record, "solve.step" if step else "solve.accepted", {},
                          event_id=step)
        replay, queue = store.subscribe(record, after=0)
        assert [e.id for e in replay] == [1, 2] and queue is not None
        store.finish(record, "cancelled", "cancelled", "solve.cancelled", {})
        assert (await queue.get()).name == "solve.cancelled"  # type: ignore[union-attr]
        assert await queue.get() is None
        assert not record.subscribers and record.done.is_set()
        assert not store.finish(record, "failed", "error", "solve.failed", {})

    asyncio.run(scenario())


@pytest.mark.parametrize(("body", "status", "problem"), [
    ({"puzzle": PUZZLE}, 422, "/problems/invalid-request"),  # no task: the body is invalid
    ({**JOB, "task": "chess"}, 404, "/problems/unknown-task"),  # a task nothing serves
])
def test_job_validation(client: httpx.Client, body: dict[str, object], status: int,
                        problem: str) -> None:
    response = client.post("/v1/jobs", json=body)
    assert assert_problem(response, status)["type"] == problem

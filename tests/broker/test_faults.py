"""Broker-mode faults with real processes: a worker SIGKILLed mid-batch, Redis stopped and
restarted, a worker started before Redis, and a job no worker can finish (dead letter)."""

from __future__ import annotations

import json
import re
import signal
import time

import httpx
from conftest import easy_puzzles, wait_until

from app import broker


def terminal_events(http: httpx.Client, job_id: str) -> list[str]:
    with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        text = response.read().decode()
    names = re.findall(r"^event: (\S+)", text, flags=re.M)
    return [n for n in names if n in broker.TERMINAL_EVENTS]


def test_worker_killed_mid_batch_jobs_finish_once_elsewhere(redis_server, workers,
                                                            start_api) -> None:
    doomed = workers.start(redis_server.url, worker_fault="slow", reclaim_idle_s=2)
    _, api = start_api(redis_server.url, reclaim_idle_s=2)
    puzzles = easy_puzzles(20)
    ids = [api.post("/v1/jobs", json={"task": "sudoku", "puzzle": p, "halting": "never"}
                    ).json()["id"] for p in puzzles]
    store = redis_server.client()

    def mid_batch() -> bool:
        return any(store.xlen(broker.events_key(i)) >= 4 for i in ids)

    wait_until(mid_batch, 30, "the first worker to be a few steps into its batch")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(5)
    finished_before = sum(bool(store.exists(broker.result_key(i))) for i in ids)
    assert finished_before < len(ids), "the kill came too late to test anything"

    workers.start(redis_server.url, reclaim_idle_s=2)
    for job_id in ids:
        assert terminal_events(api, job_id) == ["solve.completed"], job_id
        body = api.get(f"/v1/jobs/{job_id}").json()
        assert body["status"] == "succeeded" and body["result"]["steps_used"] == 16
    assert "reclaimed job" in workers.logs()
    assert int(store.get(broker.depth_key("sudoku", "trm-sudoku-tiny@1")) or 0) == 0


def test_redis_restart_is_survived(redis_server, workers, start_api) -> None:
    workers.start(redis_server.url)
    _, api = start_api(redis_server.url)
    puzzle = easy_puzzles(1)[0]
    assert api.post("/v1/solve/sudoku", json={"puzzle": puzzle}).status_code == 200

    redis_server.stop()
    wait_until(lambda: api.get("/readyz").status_code == 503, 10, "/readyz to say 503")
    refused = api.post("/v1/solve/sudoku", json={"puzzle": puzzle})
    assert refused.status_code == 503 and "Retry-After" in refused.headers

    redis_server.start()
    wait_until(lambda: api.get("/readyz").status_code == 200, 30, "recovery after restart",
               every_s=0.2)
    again = api.post("/v1/solve/sudoku", json={"puzzle": puzzle})
    assert again.status_code == 200 and again.json()["status"] == "solved"


def test_worker_started_before_redis_waits_for_it(redis_server, workers, start_api) -> None:
    redis_server.stop()
    workers.start(redis_server.url)
    deadline = time.monotonic() + 60  # a cold start loads torch and the model first
    while "retrying in" not in workers.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "retrying in" in workers.logs()
    redis_server.start()
    _, api = start_api(redis_server.url)  # ready = a worker heartbeat arrived
    puzzle = easy_puzzles(1)[0]
    assert api.post("/v1/solve/sudoku", json={"puzzle": puzzle}).json()["status"] == "solved"


def test_job_no_worker_finishes_is_dead_lettered(redis_server, workers, start_api) -> None:
    workers.start(redis_server.url, worker_fault="drop", reclaim_idle_s=0.5, max_deliveries=2)
    _, api = start_api(redis_server.url, reclaim_idle_s=0.5, max_deliveries=2)
    started = time.monotonic()
    response = api.post("/v1/solve/sudoku", json={"puzzle": easy_puzzles(1)[0]})
    assert response.status_code == 500
    problem = response.json()
    assert "job failed on 2 workers" in problem["detail"], problem
    assert time.monotonic() - started < 15
    store = redis_server.client()
    dead = store.xrange(broker.dead_letter_key("sudoku", "trm-sudoku-tiny@1"))
    assert len(dead) == 1 and dead[0][1]["deliveries"] == "2"
    with api.stream("POST", "/v1/solve/sudoku",
                    json={"puzzle": easy_puzzles(2)[1], "stream": True}) as stream:
        text = stream.read().decode()
    failed = re.findall(r"^event: solve\.failed\r?\ndata: (.*)$", text, flags=re.M)
    assert len(failed) == 1 and json.loads(failed[0])["status"] == 500, text

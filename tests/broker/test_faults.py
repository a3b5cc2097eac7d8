"""Broker-mode faults with real processes: a worker SIGKILLed mid-batch, Redis stopped and
restarted, a worker started before Redis, and a job no worker can finish (dead letter)."""

from __future__ import annotations

import json
import re
import signal
import time

import httpx
from redis_helpers import wait_until
from shipped_models import easy_puzzles

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


def test_redis_killed_mid_run_loses_no_accepted_job(redis_server, workers, start_api,
                                                    tmp_path) -> None:
    """Redis as compose runs it (append-only file) is SIGKILLed while jobs run and restarted a
    second later: every job that got its 202 finishes exactly once. Reclaiming is set far
    beyond the test, so nothing is rescued by redoing a job: the worker keeps the results it
    could not publish and writes them once Redis is back."""
    redis_server.stop()
    redis_server.data_dir = tmp_path / "redis-data"
    redis_server.data_dir.mkdir()
    redis_server.start()
    workers.start(redis_server.url, reclaim_idle_s=600, max_batch_size=16)
    _, api = start_api(redis_server.url, reclaim_idle_s=600, job_timeout_s=120)
    accepted: list[str] = []
    refused = 0
    store = redis_server.client()
    for puzzle in easy_puzzles(60):
        response = api.post("/v1/jobs", json={"task": "sudoku", "puzzle": puzzle,
                                              "halting": "never"})
        assert response.status_code == 202, response.text
        accepted.append(response.json()["id"])
    wait_until(lambda: sum(bool(store.exists(broker.result_key(i))) for i in accepted) >= 5,
               60, "the first results")
    redis_server.stop()  # SIGKILL
    time.sleep(1.0)
    for puzzle in easy_puzzles(63)[60:]:  # while it is down: refused, never half-accepted
        response = api.post("/v1/jobs", json={"task": "sudoku", "puzzle": puzzle})
        refused += response.status_code == 503
    redis_server.start()
    store = redis_server.client()
    wait_until(lambda: all(store.exists(broker.result_key(i)) for i in accepted), 120,
               "every accepted job's result after the restart", every_s=0.25)
    outcomes = {job_id: terminal_events(api, job_id) for job_id in accepted}
    lost = [job_id for job_id, events in outcomes.items() if events != ["solve.completed"]]
    duplicated = [job_id for job_id, events in outcomes.items() if len(events) > 1]
    print(f"accepted {len(accepted)}, solved {len(accepted) - len(lost)}, lost {len(lost)}, "
          f"duplicated {len(duplicated)}, refused while down {refused}")
    assert not lost and not duplicated, outcomes
    assert refused == 3


def test_a_worker_back_under_its_name_runs_what_it_was_handed(redis_server, workers,
                                                             start_api) -> None:
    """A job delivered to a worker that never started it (a read whose reply was lost, or a
    batch cut short when Redis went away) stays pending under that worker's name. The worker,
    or its restart under the same name, starts it without waiting out the reclaim time."""
    dropper = workers.start(redis_server.url, worker_fault="drop", reclaim_idle_s=600)
    _, api = start_api(redis_server.url, reclaim_idle_s=600)
    job_id = api.post("/v1/jobs", json={"task": "sudoku", "puzzle": easy_puzzles(1)[0]}
                      ).json()["id"]
    wait_until(lambda: "dropping job" in workers.logs(), 60, "the job to be handed over")
    dropper.send_signal(signal.SIGKILL)
    dropper.wait(5)
    workers.start(redis_server.url, reclaim_idle_s=600, worker_id="w0")
    assert terminal_events(api, job_id) == ["solve.completed"]
    assert f"recovered job {job_id}" in workers.logs()


def test_a_job_redis_would_not_queue_is_503_and_leaves_nothing(redis_server, workers,
                                                               start_api) -> None:
    workers.start(redis_server.url)
    running, api = start_api(redis_server.url)
    job = {"task": "sudoku", "puzzle": easy_puzzles(1)[0]}
    store = redis_server.client()
    store.config_set("maxmemory", 1)  # Redis still answers reads; it refuses every write (OOM)
    try:
        refused = api.post("/v1/jobs", json=job)
    finally:
        store.config_set("maxmemory", 0)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "2" and refused.json()["reason"] == "broker"
    assert len(running.service.store) == 0  # no job object for a job nobody will run
    assert store.keys(broker.meta_key("*")) == []
    assert api.post("/v1/jobs", json=job).status_code == 202  # a retry gets through


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


def test_hundreds_of_jobs_in_flight_share_a_few_connections(redis_server, workers,
                                                            start_api) -> None:
    """400 jobs in flight on one replica (queue limit 512): every one is accepted and finishes,
    and the replica holds a handful of Redis connections, not one per job."""
    workers.start(redis_server.url, max_batch_size=16)
    running, api = start_api(redis_server.url, max_queue_size=512, cache_enabled=False)
    store = redis_server.client()
    peak = 0

    def api_connections() -> int:
        return sum(c.get("name") == "trm-api" for c in store.client_list())

    ids = []
    for puzzle in easy_puzzles(400):
        response = api.post("/v1/jobs", json={"task": "sudoku", "puzzle": puzzle,
                                              "halting": "never"})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
        if len(ids) % 50 == 0:
            peak = max(peak, api_connections())

    def all_done() -> bool:
        nonlocal peak
        peak = max(peak, api_connections())
        return all(store.exists(broker.result_key(i)) for i in ids)

    wait_until(all_done, 180, "all 400 jobs to finish", every_s=0.5)
    statuses = [api.get(f"/v1/jobs/{i}").json()["status"] for i in ids]
    assert statuses.count("succeeded") == 400, {s: statuses.count(s) for s in set(statuses)}
    assert peak <= running.app.state.settings.redis_max_connections
    assert peak <= 8, f"{peak} connections for 400 jobs"
    assert api.get("/readyz").status_code == 200


def test_a_job_redis_forgot_fails_at_once(redis_server, workers, start_api) -> None:
    """Redis without persistence restarts while a job waits in its queue: the client learns
    within seconds that the job is gone (503, submit again), not after deadline + reclaims."""
    _, api = start_api(redis_server.url, ready=False, job_timeout_s=300)
    worker = workers.start(redis_server.url)
    wait_until(lambda: api.get("/readyz").status_code == 200, 60, "a live worker", every_s=0.2)
    worker.send_signal(signal.SIGSTOP)  # alive to Redis for its heartbeat TTL, takes nothing
    try:
        created = api.post("/v1/jobs", json={"task": "sudoku", "puzzle": easy_puzzles(1)[0]})
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        redis_server.stop()
        redis_server.start()  # empty: the job's queue message, events and metadata are gone
        started = time.monotonic()
        wait_until(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] == "failed", 30,
                   "the job to be reported lost", every_s=0.2)
        body = api.get(f"/v1/jobs/{job_id}").json()
        assert time.monotonic() - started < 20
        assert body["error"]["status"] == 503 and "submit it again" in body["error"]["detail"]
    finally:
        worker.send_signal(signal.SIGCONT)


def test_jobs_cancelled_while_queued_leave_no_message_behind(redis_server, workers,
                                                             start_api) -> None:
    _, api = start_api(redis_server.url, ready=False)
    worker = workers.start(redis_server.url)
    wait_until(lambda: api.get("/readyz").status_code == 200, 60, "a live worker", every_s=0.2)
    store = redis_server.client()
    queue = broker.queue_key("sudoku", "trm-sudoku-tiny@1")
    worker.send_signal(signal.SIGSTOP)
    try:
        ids = [api.post("/v1/jobs", json={"task": "sudoku", "puzzle": p}).json()["id"]
               for p in easy_puzzles(3)]
        for job_id in ids:
            assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
        assert store.xlen(queue) == 3
    finally:
        worker.send_signal(signal.SIGCONT)
    solved = api.post("/v1/solve/sudoku", json={"puzzle": easy_puzzles(4)[3]})
    assert solved.json()["status"] == "solved"
    wait_until(lambda: store.xlen(queue) == 0, 10, "the cancelled jobs' messages to go")

"""ARC's adapt-then-vote in broker mode with real processes: a worker killed mid-fit, or stopped
past its shutdown timeout, leaves its job to another worker, which finishes it once; a cancel
stops the fit on the worker running it; a passed deadline is a 504; and ARC's per-model
admission limit holds as it does locally."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from arc_helpers import KNOWN, UNSEEN, save_tiny_arc_checkpoint
from redis_helpers import Workers, wait_until
from test_faults import terminal_events

from app import broker

MODEL = "trm-arc-tiny@1"


@pytest.fixture
def arc_workers(tmp_path: Path) -> Iterator[Workers]:
    group = Workers(tmp_path, save_tiny_arc_checkpoint(tmp_path / "checkpoints"))
    yield group
    group.stop_all()


def pending(store: redis.Redis) -> int:
    """ARC messages delivered to a worker and not yet acked."""
    return int(store.xpending(broker.queue_key("arc", MODEL), broker.GROUP)["pending"])


def test_arc_job_of_a_killed_worker_finishes_once_elsewhere(redis_server, arc_workers,
                                                            start_api) -> None:
    doomed = arc_workers.start(redis_server.url, arc_adapt_max_steps=100_000,
                               arc_adapt_micro_batch=2)
    _, api = start_api(redis_server.url, checkpoint_dir=arc_workers.checkpoint_dir,
                       reclaim_idle_s=3)
    job_id = api.post("/v1/jobs/arc", json={**UNSEEN, "adapt_budget_s": 20}).json()["id"]
    store = redis_server.client()
    wait_until(lambda: store.xlen(broker.events_key(job_id)) >= 2, 60,
               "the first worker to report its fit's progress")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(5)
    assert not store.exists(broker.result_key(job_id)), "the kill came too late"

    # Reclaims its own running job too, so deliveries must not run out meanwhile.
    arc_workers.start(redis_server.url, reclaim_idle_s=3, max_deliveries=20,
                      arc_adapt_max_steps=4)
    assert terminal_events(api, job_id) == ["solve.completed"]
    body = api.get(f"/v1/jobs/{job_id}").json()
    assert body["status"] == "succeeded" and body["result"]["mode"] == "adapted"
    assert "reclaimed job" in arc_workers.logs()
    assert pending(store) == 0
    assert int(store.get(broker.depth_key("arc", MODEL)) or 0) == 0


def test_arc_job_outliving_a_stopping_worker_is_left_to_another(redis_server, arc_workers,
                                                                start_api) -> None:
    stopping = arc_workers.start(redis_server.url, arc_adapt_max_steps=100_000,
                                 arc_adapt_micro_batch=2, shutdown_timeout_s=0.5)
    _, api = start_api(redis_server.url, checkpoint_dir=arc_workers.checkpoint_dir,
                       reclaim_idle_s=3)
    job_id = api.post("/v1/jobs/arc", json={**UNSEEN, "adapt_budget_s": 20}).json()["id"]
    store = redis_server.client()
    wait_until(lambda: store.xlen(broker.events_key(job_id)) >= 2, 60,
               "the worker to report its fit's progress")
    stopping.send_signal(signal.SIGTERM)
    assert stopping.wait(15) == 0
    assert not store.exists(broker.result_key(job_id)) and pending(store) == 1

    arc_workers.start(redis_server.url, reclaim_idle_s=3, max_deliveries=20,
                      arc_adapt_max_steps=4)
    assert terminal_events(api, job_id) == ["solve.completed"]
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"


def test_cancel_stops_the_fit_on_the_worker(redis_server, arc_workers, start_api) -> None:
    arc_workers.start(redis_server.url, arc_adapt_max_steps=100_000, arc_adapt_micro_batch=2)
    _, api = start_api(redis_server.url, checkpoint_dir=arc_workers.checkpoint_dir)
    created = api.post("/v1/jobs/arc", json={**UNSEEN, "adapt_budget_s": 30})
    location, job_id = created.headers["location"], created.json()["id"]
    store = redis_server.client()
    wait_until(lambda: store.xlen(broker.events_key(job_id)) >= 2, 60,
               "the worker to report its fit's progress")
    assert api.delete(location).status_code == 204
    assert api.get(location).json()["status"] == "cancelled"
    wait_until(lambda: pending(store) == 0, 10, "the worker to stop the fit and ack the job")
    # The fit lock is free again: the next fit of the task starts at once.
    result = api.post("/v1/solve/arc", json={**UNSEEN, "adapt_budget_s": 0.5}).json()
    assert result["adapt"]["cached"] is False
    assert result["timing"]["adapt_ms"] / 1000 - result["adapt"]["seconds"] < 1.5


def test_passed_deadline_is_a_504(redis_server, arc_workers, start_api) -> None:
    arc_workers.start(redis_server.url)
    _, api = start_api(redis_server.url, checkpoint_dir=arc_workers.checkpoint_dir)
    late = api.post("/v1/solve/arc", json={**KNOWN, "timeout_ms": 1})
    assert late.status_code == 504, late.text


def test_arc_admission_limit_holds(redis_server, arc_workers, start_api) -> None:
    arc_workers.start(redis_server.url, worker_fault="drop")  # takes jobs, never finishes
    _, api = start_api(redis_server.url, checkpoint_dir=arc_workers.checkpoint_dir,
                       arc_max_queue_size=1)
    assert api.post("/v1/jobs/arc", json=KNOWN).status_code == 202
    refused = api.post("/v1/solve/arc", json=KNOWN)
    assert refused.status_code == 503 and refused.json()["reason"] == "queue_full"

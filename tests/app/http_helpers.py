"""Helpers shared by the HTTP service tests: SSE and metrics parsing, polling, problem checks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from trm_core.engine import TickStats

PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
MODEL_ID = "trm-sudoku-tiny@1"
MAX_STEPS = 4
TERMINAL = {"solve.completed", "solve.failed", "solve.cancelled"}


def parse_sse(lines: Iterator[str], stop_at: set[str] | None = None) -> list[dict[str, Any]]:
    """Events of an SSE body as {id, event, data}; stops after an event named in `stop_at`."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if "data" in current:
                events.append(current)
                if stop_at and current.get("event") in stop_at:
                    break
            current = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        if field == "id":
            current["id"] = int(value)
        elif field == "event":
            current["event"] = value
        elif field == "data":
            current["data"] = json.loads(value)
    return events


def answer_text(result: dict[str, Any]) -> str:
    """The answer of a solve result, verified (`solution`) or not (`answer`)."""
    return str(result["solution"] if result["status"] == "solved" else result["answer"])


def metric_value(http: httpx.Client, name: str, **labels: str) -> float:
    """One sample from /metrics, 0 when absent."""
    text = http.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with `status`; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    request_id = response.headers["x-request-id"]
    assert body["status"] == status
    assert body["request_id"] == request_id
    assert body["instance"] == f"urn:request:{request_id}"
    assert body["type"].startswith("/problems/") and body["title"] and body["detail"]
    return body


class TickControl:
    """Slows or blocks the engine thread from its `on_tick` hook, and records every tick."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self.stats: list[TickStats] = []

    def hook(self, stats: TickStats) -> None:
        self.stats.append(stats)
        if self.delay_s:
            time.sleep(self.delay_s)
        self.gate.wait(20)  # bounded, so a failing test cannot hang the engine forever

    @property
    def max_batch(self) -> int:
        return max((s.batch_size for s in self.stats), default=0)

"""The result cache in both runners: a symmetric copy of a solved puzzle is answered from the
cache (Redis in broker mode, the bounded in-process store otherwise), options that change the
answer are another key, requests that read steps are never answered from it, and the
in-process store keeps at most its size for at most its TTL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from http_helpers import TERMINAL, metric_value, parse_sse
from in_thread import serve_in_thread
from redis_helpers import broker_stack
from shipped_models import TINY, alone, easy_puzzles

from app.cache import MemoryAnswers
from app.settings import Settings
from trm_core.tasks import TASKS


@pytest.fixture(scope="module", params=["local", "broker"])
def http(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = Settings(checkpoint_dir=alone(TINY), device="cpu", max_batch_size=8,
                        torch_threads=1)
    if request.param == "local":
        context = serve_in_thread(settings)
    else:
        context = broker_stack(settings, tmp_path_factory.mktemp("cache"))
    with context as running, httpx.Client(base_url=running.base_url, timeout=60) as client:
        yield client


def test_symmetric_copy_is_answered_from_the_cache(http: httpx.Client) -> None:
    task = TASKS["sudoku"]
    puzzle = easy_puzzles(2)[1]  # the first is one the model gets wrong
    hits = metric_value(http, "trm_cache_requests_total", result="hit", task="sudoku")
    first = http.post("/v1/solve/sudoku", json={"puzzle": puzzle}).json()
    assert first["status"] == "solved" and first["cached"] is False

    twin = task.format(task.random_symmetry(np.random.default_rng(7)).apply(task.parse(puzzle)))
    assert twin != puzzle
    second = http.post("/v1/solve/sudoku", json={"puzzle": twin}).json()
    assert second["cached"] is True and second["status"] == "solved"
    assert task.verify(task.parse(twin), task.parse(second["solution"]))
    assert metric_value(http, "trm_cache_requests_total", result="hit",
                        task="sudoku") == hits + 1
    # Another option that changes the answer is another key: a miss.
    third = http.post("/v1/solve/sudoku", json={"puzzle": twin, "max_steps": 15}).json()
    assert third["cached"] is False
    # Whoever reads the steps (a stream, return_steps) watches the model work: never cached.
    with http.stream("POST", "/v1/solve/sudoku", json={"puzzle": twin, "stream": True}) as sse:
        events = parse_sse(sse.iter_lines(), stop_at=TERMINAL)
    assert any(e["event"] == "solve.step" for e in events)
    assert events[-1]["event"] == "solve.completed" and events[-1]["data"]["cached"] is False
    steps = http.post("/v1/solve/sudoku", json={"puzzle": twin, "return_steps": True}).json()
    assert steps["cached"] is False and steps["trajectory"]


def test_memory_answers_are_bounded_and_expire() -> None:
    now = [0.0]
    answers = MemoryAnswers(max_entries=2, ttl_s=10.0, clock=lambda: now[0])
    answers.put("a", "1")
    answers.put("b", "2")
    assert answers.get("a") == "1"  # a is now the most recently used
    answers.put("c", "3")
    assert len(answers) == 2 and answers.get("b") is None
    assert answers.get("a") == "1" and answers.get("c") == "3"
    now[0] = 10.0
    assert answers.get("a") is None and answers.get("c") is None and len(answers) == 0
    MemoryAnswers(max_entries=0, ttl_s=1.0).put("x", "y")  # size 0: caching off, no error

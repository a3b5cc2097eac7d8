"""Generating example puzzles over real HTTP: the searches run in a child process (made on the
first request, stopped with the app, replaced when it dies), and generations beyond
TRM_GENERATE_MAX_INFLIGHT get 503 + Retry-After rather than piling onto the service."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from http_helpers import assert_problem
from in_thread import RunningServer, serve_in_thread

from app.settings import Settings
from trm_core.tasks.sudoku import parse_puzzle
from trm_core.tasks.sudoku_generate import solve

GENERATE = "/v1/examples/sudoku/generate"


def children() -> set[int | None]:
    return {child.pid for child in multiprocessing.active_children()}


def test_generation_runs_in_a_child_process_that_stops_with_the_app(
        make_settings: Callable[..., Settings]) -> None:
    before = children()
    with serve_in_thread(make_settings(generate_workers=1)) as running, \
            httpx.Client(base_url=running.base_url, timeout=60) as http:
        assert children() == before  # made on the first request, not at start-up
        made = http.get(GENERATE, params={"difficulty": "hard", "seed": 5})
        assert made.status_code == 200, made.text
        solutions, _ = solve(parse_puzzle(made.json()["puzzle"]))
        assert len(solutions) == 1
        assert len(children() - before) == 1
    assert children() <= before


def test_generations_beyond_the_limit_get_503_and_retry_after(
        start_server: Callable[..., tuple[RunningServer, httpx.Client]]) -> None:
    running, http = start_server(generate_workers=1, generate_max_inflight=2)

    def ask(seed: int) -> httpx.Response:
        with httpx.Client(base_url=running.base_url, timeout=60) as own:
            return own.get(GENERATE, params={"difficulty": "hard", "seed": seed})

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(ask, range(12)))
    busy = [a for a in answers if a.status_code == 503]
    assert busy and len(busy) <= 10
    for answer in busy:
        problem: dict[str, Any] = assert_problem(answer, 503)
        assert problem["reason"] == "generator_busy" and answer.headers["retry-after"] == "2"
    assert all(a.status_code == 200 for a in answers if a not in busy)
    # every slot is free again once the generations ended
    assert http.get(GENERATE, params={"difficulty": "easy"}).status_code == 200


def test_a_killed_generator_process_is_replaced(
        start_server: Callable[..., tuple[RunningServer, httpx.Client]]) -> None:
    before = children()
    _, http = start_server(generate_workers=1)
    assert http.get(GENERATE, params={"difficulty": "easy"}).status_code == 200
    [pid] = children() - before
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid in children() and time.monotonic() < deadline:
        time.sleep(0.05)
    problem = assert_problem(http.get(GENERATE, params={"difficulty": "easy"}), 503)
    assert problem["reason"] == "generator_failed"
    assert http.get(GENERATE, params={"difficulty": "easy"}).status_code == 200
    assert len(children() - before) == 1

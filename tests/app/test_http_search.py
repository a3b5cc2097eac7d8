"""Verified search over HTTP: a budget per request, the steps spent reported, a 422 past the
service's cap, identical answers for identical requests, givens kept, and search events
numbered on across rounds. The model is the tiny untrained one, so searches spend their budget
(what the budget bounds); whether search finds answers is tested in tests/core/test_search.py
and measured by `trm eval --budget-steps`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from http_helpers import MAX_STEPS, PUZZLE, assert_problem, parse_sse
from in_thread import RunningServer

Starter = Callable[..., tuple[RunningServer, httpx.Client]]


def _solve(http: httpx.Client, **extra: Any) -> dict[str, Any]:
    response = http.post("/v1/solve/sudoku", json={"puzzle": PUZZLE, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_request_budget_is_spent_in_rounds_and_reported(start_server: Starter) -> None:
    _, http = start_server(search_attempts=4)
    body = _solve(http, budget_steps=3 * MAX_STEPS, seed=7)
    search = body["search"]
    assert search["budget_steps"] == 3 * MAX_STEPS
    assert body["status"] == "unsolved" and body["valid"] is False
    rounds = search["rounds"]
    assert rounds[0] == {**rounds[0], "round": 0, "extra_givens": 0, "attempts": 1}
    assert len(rounds) >= 2 and all(r["attempts"] <= 4 for r in rounds)
    assert search["steps_used"] == sum(r["steps"] * r["attempts"] for r in rounds)
    assert search["steps_used"] <= 3 * MAX_STEPS
    assert body["steps_used"] == sum(r["steps"] for r in rounds)


def test_identical_requests_give_identical_answers(start_server: Starter) -> None:
    _, http = start_server(search_attempts=4)
    first, second = (_solve(http, budget_steps=3 * MAX_STEPS, seed=3) for _ in range(2))
    assert first.get("grid", first.get("answer_grid")) == \
        second.get("grid", second.get("answer_grid")) and first["search"] == second["search"]


def test_the_service_default_budget_applies_and_zero_turns_search_off(
        start_server: Starter) -> None:
    _, http = start_server(search_budget_steps=2 * MAX_STEPS, search_attempts=2)
    assert _solve(http)["search"]["budget_steps"] == 2 * MAX_STEPS
    plain = _solve(http, budget_steps=0)
    assert "search" not in plain and plain["steps_used"] <= MAX_STEPS


def test_a_budget_past_the_cap_is_refused_by_name(start_server: Starter) -> None:
    _, http = start_server(max_budget_steps=100)
    response = http.post("/v1/solve/sudoku", json={"puzzle": PUZZLE, "budget_steps": 101})
    assert_problem(response, 422)
    assert "budget_steps" in response.text and "100" in response.text
    negative = http.post("/v1/solve/sudoku", json={"puzzle": PUZZLE, "budget_steps": -1})
    assert_problem(negative, 422)


def test_search_streams_steps_numbered_on_across_rounds(start_server: Starter) -> None:
    _, http = start_server(search_attempts=2)
    with http.stream("POST", "/v1/solve/sudoku",
                     json={"puzzle": PUZZLE, "budget_steps": 2 * MAX_STEPS, "stream": True}
                     ) as response:
        events = parse_sse(response.iter_lines())
    steps = [e["data"]["step"] for e in events if e["event"] == "solve.step"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > MAX_STEPS
    assert events[-1]["event"] == "solve.completed"
    assert events[-1]["data"]["steps_used"] == len(steps)

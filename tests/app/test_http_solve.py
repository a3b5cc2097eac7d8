"""`POST /v1/solve/{task}`: sync answers, the SSE event sequence, and concurrent requests."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
from http_helpers import MAX_STEPS, MODEL_ID, PUZZLE, TERMINAL, answer_text, parse_sse

from app.schemas import AcceptedEvent, SolveResult, StepEvent


def test_sync_solve_returns_a_full_result(client: httpx.Client) -> None:
    response = client.post("/v1/solve/sudoku", json={"puzzle": PUZZLE})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    body = response.json()
    SolveResult.model_validate(body)
    assert body["id"].startswith("slv_") and body["object"] == "solve.result"
    assert body["task"] == "sudoku" and body["model"] == MODEL_ID
    assert body["status"] in ("solved", "unsolved")
    assert body["valid"] == (body["status"] == "solved") == (not body["unverified"])
    grid = body["grid"] if body["valid"] else body["answer_grid"]
    assert len(answer_text(body)) == 81
    assert len(grid) == 9 and all(len(row) == 9 for row in grid)
    assert 1 <= body["steps_used"] <= MAX_STEPS
    assert 0.0 <= body["raw_confidence"] <= 1.0 and 0.0 <= body["q_halt"] <= 1.0
    assert "confidence" not in body  # this checkpoint has no calibration
    assert body["attempts"] == 1
    assert set(body["timing"]) == {"queue_ms", "compute_ms", "total_ms"}
    assert "trajectory" not in body


def test_grid_input_and_trajectory(client: httpx.Client) -> None:
    grid = [[0 if ch == "." else int(ch) for ch in PUZZLE[9 * r: 9 * r + 9]] for r in range(9)]
    response = client.post("/v1/solve/sudoku", json={"grid": grid, "return_steps": True,
                                                     "halting": "never", "model": MODEL_ID})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["steps_used"] == MAX_STEPS and not body["halted_early"]
    steps = body["trajectory"]
    assert [s["step"] for s in steps] == list(range(1, MAX_STEPS + 1))
    assert steps[-1]["grid"] == answer_text(body)
    assert set(steps[0]) == {"step", "grid", "confidence", "changed", "q_halt", "valid"}


def test_max_steps_and_early_stop_alias(client: httpx.Client) -> None:
    response = client.post("/v1/solve/sudoku", json={"puzzle": PUZZLE, "max_steps": 2,
                                                     "early_stop": False,
                                                     "model": "trm-sudoku-tiny"})
    assert response.status_code == 200, response.text
    assert response.json()["steps_used"] == 2


def test_client_request_id_is_echoed(client: httpx.Client) -> None:
    response = client.post("/v1/solve/sudoku", json={"puzzle": PUZZLE},
                           headers={"X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"


def _stream(client: httpx.Client, body: dict[str, object], **headers: str
            ) -> tuple[httpx.Response, list[dict[str, Any]]]:
    with client.stream("POST", "/v1/solve/sudoku", json=body, headers=headers) as response:
        events = parse_sse(response.iter_lines()) if response.status_code == 200 else []
        response.read() if response.status_code != 200 else None
    return response, events


def test_sse_event_sequence(client: httpx.Client) -> None:
    response, events = _stream(client, {"puzzle": PUZZLE, "stream": True, "halting": "never"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    names = [e["event"] for e in events]
    assert names == ["solve.accepted"] + ["solve.step"] * MAX_STEPS + ["solve.completed"]
    assert [e["id"] for e in events] == list(range(MAX_STEPS + 2))
    for event in events:
        assert event["data"]["type"] == event["event"]
        assert event["data"]["sequence_number"] == event["id"]
    accepted = events[0]["data"]
    assert accepted["model"] == MODEL_ID and accepted["max_steps"] == MAX_STEPS
    assert AcceptedEvent.model_validate(accepted).model_dump(exclude_unset=True) == accepted
    for step, event in enumerate(events[1:-1], start=1):
        data = StepEvent.model_validate(event["data"])  # extra fields are refused
        assert data.step == step and len(data.grid) == 81 and len(data.cell_confidence) == 81
        assert data.changed == len(data.changed_cells)
        assert all(round(c, 3) == c for c in data.cell_confidence)
    completed = events[-1]["data"]
    assert completed["status"] in ("solved", "unsolved")
    assert completed["id"] == accepted["id"] and completed["steps_used"] == MAX_STEPS
    assert answer_text(completed) == events[-2]["data"]["grid"]


def test_accept_header_selects_streaming(client: httpx.Client) -> None:
    response, events = _stream(client, {"puzzle": PUZZLE}, accept="text/event-stream")
    assert response.status_code == 200
    assert events[0]["event"] == "solve.accepted" and events[-1]["event"] in TERMINAL


def test_validation_errors_come_before_the_stream(client: httpx.Client) -> None:
    response, events = _stream(client, {"puzzle": PUZZLE[:-1], "stream": True})
    assert response.status_code == 422 and events == []
    assert response.headers["content-type"].startswith("application/problem+json")


def test_bad_request_among_good_ones_fails_alone(client: httpx.Client) -> None:
    bodies = [{"puzzle": PUZZLE, "halting": "never"}] * 8
    bodies.insert(4, {"puzzle": "x" * 81})
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: client.post("/v1/solve/sudoku", json=b), bodies))
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * 4 + [422] + [200] * 4
    assert all(r.json()["steps_used"] == MAX_STEPS for r in responses if r.status_code == 200)


def test_an_unverified_answer_is_never_a_solution(client: httpx.Client) -> None:
    """The untrained model's answer fails the check: it is an `answer` with its conflicts, every
    given kept, and no `solution`, `grid` or (uncalibrated) `confidence` anywhere."""
    from trm_core.tasks.sudoku import conflicting_cells, parse_puzzle

    body = client.post("/v1/solve/sudoku", json={"puzzle": PUZZLE, "budget_steps": 0}).json()
    assert body["status"] == "unsolved" and body["unverified"] and not body["valid"]
    assert not {"solution", "grid", "confidence"} & set(body)
    puzzle, answer = parse_puzzle(PUZZLE), [d for row in body["answer_grid"] for d in row]
    assert all(a == p for a, p in zip(answer, puzzle, strict=True) if p)  # givens kept
    expected = conflicting_cells(puzzle, answer).reshape(9, 9).nonzero()
    assert body["conflicts"] == [[int(r), int(c)] for r, c in zip(*expected, strict=True)]
    assert body["conflicts"]


def test_a_list_sent_as_puzzle_points_to_grid(client: httpx.Client) -> None:
    response = client.post("/v1/solve/sudoku", json={"puzzle": [[0] * 9] * 9})
    assert response.status_code == 422
    assert "send a nested list of cells as 'grid'" in response.json()["detail"]

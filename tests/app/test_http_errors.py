"""Every error status as an RFC 9457 problem: 400, 401, 404, 405, 413, 415, 422 and 500."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from http_helpers import MODEL_ID, PUZZLE, assert_problem
from in_thread import RunningServer

SOLVE = "/v1/solve/sudoku"


def test_invalid_json_is_400(client: httpx.Client) -> None:
    response = client.post(SOLVE, content=b'{"puzzle": ', headers={"content-type":
                                                                   "application/json"})
    body = assert_problem(response, 400)
    assert "not valid JSON" in body["detail"]


@pytest.mark.parametrize(("path", "slug"), [
    ("/v1/solve/chess", "unknown-task"),
    ("/v1/jobs/job_does_not_exist", "unknown-job"),
    ("/v1/models/nope@1", "unknown-model"),
    ("/v1/nothing-here", "not-found"),
])
def test_unknown_things_are_404(client: httpx.Client, path: str, slug: str) -> None:
    response = (client.post(path, json={"puzzle": PUZZLE}) if path.startswith("/v1/solve")
                else client.get(path))
    body = assert_problem(response, 404)
    assert body["type"].endswith(slug)


def test_unknown_task_names_the_known_ones(client: httpx.Client) -> None:
    body = assert_problem(client.post("/v1/solve/chess", json={"puzzle": PUZZLE}), 404)
    assert "sudoku" in body["detail"] and body["known"] == ["sudoku"]


def test_task_without_a_model_is_404_naming_the_served_ones(client: httpx.Client) -> None:
    body = assert_problem(client.post("/v1/solve/maze", json={"puzzle": "#" * 900}), 404)
    assert body["detail"] == "no model is loaded for task 'maze'; this service serves: sudoku"
    tools = client.get("/v1/tools").json()["data"]
    assert [tool["name"] for tool in tools] == ["solve_sudoku"]


def test_unknown_model_names_the_available_ones(client: httpx.Client) -> None:
    response = client.post(SOLVE, json={"puzzle": PUZZLE, "model": "trm-sudoku-huge@3"})
    body = assert_problem(response, 404)
    assert MODEL_ID in body["detail"] and body["available"] == [MODEL_ID]


def test_unknown_job_cancel_is_404(client: httpx.Client) -> None:
    assert_problem(client.delete("/v1/jobs/job_missing"), 404)


def test_wrong_method_is_405(client: httpx.Client) -> None:
    assert_problem(client.get(SOLVE), 405)


def test_body_over_the_limit_is_413_by_length(client: httpx.Client) -> None:
    big = b'{"puzzle": "' + b"." * 270_000 + b'"}'
    body = assert_problem(client.post(SOLVE, content=big,
                                      headers={"content-type": "application/json"}), 413)
    assert "262144" in body["detail"]


def test_body_over_the_limit_is_413_when_streamed(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        yield b'{"puzzle": "'
        for _ in range(34):
            yield b"." * 8_000
        yield b'"}'

    response = client.post(SOLVE, content=chunks(), headers={"content-type": "application/json"})
    assert_problem(response, 413)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_non_json_body_is_415(client: httpx.Client, content_type: str) -> None:
    response = client.post(SOLVE, content=b'{"puzzle": "1"}',
                           headers={"content-type": content_type})
    assert_problem(response, 415)


def _error(response: httpx.Response) -> dict[str, Any]:
    body = assert_problem(response, 422)
    assert body["errors"], body
    entry: dict[str, Any] = body["errors"][0]
    assert entry["msg"] in body["detail"] or body["detail"] in entry["msg"]
    return entry


def test_wrong_length_is_422(client: httpx.Client) -> None:
    entry = _error(client.post(SOLVE, json={"puzzle": PUZZLE[:80]}))
    assert entry["loc"] == ["body", "puzzle"] and "expected 81 cells, got 80" in entry["msg"]


def test_bad_character_is_422(client: httpx.Client) -> None:
    entry = _error(client.post(SOLVE, json={"puzzle": "x" + PUZZLE[1:]}))
    assert entry["loc"] == ["body", "puzzle"] and "'x'" in entry["msg"]


def test_conflicting_givens_name_both_cells(client: httpx.Client) -> None:
    puzzle = "55" + PUZZLE[2:]
    entry = _error(client.post(SOLVE, json={"puzzle": puzzle}))
    assert "r1c1" in entry["msg"] and "r1c2" in entry["msg"]
    assert entry["cells"] == [[0, 0], [0, 1]]


def test_bad_grid_cell_points_at_grid(client: httpx.Client) -> None:
    grid = [[0] * 9 for _ in range(9)]
    grid[2][3] = 12
    entry = _error(client.post(SOLVE, json={"grid": grid}))
    assert entry["loc"] == ["body", "grid"] and entry["cells"] == [[2, 3]]


@pytest.mark.parametrize("max_steps", [0, 5, 99])
def test_max_steps_out_of_range_names_the_range(client: httpx.Client, max_steps: int) -> None:
    entry = _error(client.post(SOLVE, json={"puzzle": PUZZLE, "max_steps": max_steps}))
    assert entry["loc"] == ["body", "max_steps"] and "between 1 and 4" in entry["msg"]


@pytest.mark.parametrize("attempts", [0, 9])
def test_attempts_out_of_range(client: httpx.Client, attempts: int) -> None:
    entry = _error(client.post(SOLVE, json={"puzzle": PUZZLE, "attempts": attempts}))
    assert entry["loc"] == ["body", "attempts"] and "between 1 and 8" in entry["msg"]


@pytest.mark.parametrize("body", [
    {},
    {"puzzle": PUZZLE, "grid": [[0] * 9] * 9},
    {"puzzle": PUZZLE, "halting": "sometimes"},
    {"puzzle": PUZZLE, "unexpected": 1},
    {"puzzle": PUZZLE, "timeout_ms": 0},
    {"puzzle": PUZZLE, "latent_noise": 2.0},
])
def test_schema_errors_are_422(client: httpx.Client, body: dict[str, Any]) -> None:
    _error(client.post(SOLVE, json=body))


@pytest.mark.parametrize(("path", "field", "value"), [
    (SOLVE, "max_steps", True),
    (SOLVE, "max_steps", "2"),
    (SOLVE, "max_steps", 2.0),
    (SOLVE, "attempts", "1"),
    (SOLVE, "seed", False),
    (SOLVE, "timeout_ms", "1000"),
    (SOLVE, "latent_noise", "0.1"),
    (SOLVE, "latent_noise", True),
    (SOLVE, "return_steps", 1),
    (SOLVE, "stream", "true"),
    (SOLVE, "early_stop", 0),
    ("/v1/jobs", "max_steps", True),
    ("/v1/jobs", "budget_steps", "16"),
])
def test_loose_types_are_422_naming_the_field(client: httpx.Client, path: str, field: str,
                                              value: Any) -> None:
    body = {"puzzle": PUZZLE, field: value, **({"task": "sudoku"} if "jobs" in path else {})}
    entry = _error(client.post(path, json=body))
    assert entry["loc"] == ["body", field]


def test_exact_types_pass(client: httpx.Client) -> None:
    body = {"puzzle": PUZZLE, "max_steps": 2, "latent_noise": 0, "return_steps": True,
            "seed": 3, "timeout_ms": 10_000}
    assert client.post(SOLVE, json=body).status_code == 200  # an integer is a fine float


def test_crash_is_500_without_internals(shared_server: RunningServer, client: httpx.Client,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internal state")

    monkeypatch.setattr(shared_server.service, "admit", explode)
    response = client.post(SOLVE, json={"puzzle": PUZZLE})
    body = assert_problem(response, 500)
    assert "secret" not in response.text and "Traceback" not in response.text
    assert body["type"].endswith("internal-error")


# ---------------------------------------------------------------------------------- auth


@pytest.fixture
def keyed(start_server: Callable[..., tuple[RunningServer, httpx.Client]]) -> httpx.Client:
    _, http = start_server(api_keys="alpha-key, beta-key")
    return http


def test_missing_key_is_401(keyed: httpx.Client) -> None:
    response = keyed.post(SOLVE, json={"puzzle": PUZZLE})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_key_is_401(keyed: httpx.Client) -> None:
    response = keyed.get("/v1/models", headers={"Authorization": "Bearer gamma-key"})
    assert_problem(response, 401)


def test_bearer_and_x_api_key_are_accepted(keyed: httpx.Client) -> None:
    bearer = keyed.post(SOLVE, json={"puzzle": PUZZLE},
                        headers={"Authorization": "Bearer alpha-key"})
    assert bearer.status_code == 200, bearer.text
    header = keyed.get("/v1/models", headers={"X-API-Key": "beta-key"})
    assert header.status_code == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/openapi.json", "/docs"])
def test_probes_and_docs_are_public(keyed: httpx.Client, path: str) -> None:
    assert keyed.get(path).status_code == 200

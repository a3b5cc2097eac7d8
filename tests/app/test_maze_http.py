"""`POST /v1/solve/maze` over real HTTP against real uvicorn serving a tiny Sudoku and two tiny
maze checkpoints: the result's path fields (JSON, the SSE `solve.completed`, jobs, MCP), the SSE
event sequence, parse errors as problems naming the problem, options, metrics labelled by task,
the maze tool in both tool listings, the OpenAPI document, and maze examples.

The models are untrained (`maze_helpers`): answers are unsolved; tests check shapes, sequences
and statuses. The stand-in "painter" draws path cells so the path fields are not empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from http_helpers import assert_problem, metric_value, parse_sse, wait_until
from in_thread import RunningServer, serve_in_thread
from maze_helpers import (
    MAZE_ID,
    MAZE_STEPS,
    PAINTER_ID,
    committed_mazes,
    save_maze_checkpoint,
    save_sudoku_checkpoint,
)
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from app.schemas import SolveResult, StepEvent
from app.settings import Settings
from trm_core.tasks import get_task

TASK = get_task("maze")
ROW = committed_mazes(1)[0]
MAZE = ROW["puzzle"]  # one 900-character line
LINES = "\n".join(MAZE[r * 30:(r + 1) * 30] for r in range(30))
PATH_FIELDS = {"path", "path_complete", "path_length", "shortest_length", "verifies"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("checkpoints")
    save_sudoku_checkpoint(root)
    save_maze_checkpoint(root)
    save_maze_checkpoint(root, painter=True)
    with serve_in_thread(Settings(checkpoint_dir=root, device="cpu", max_batch_size=4)) as up:
        yield up


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


def _solve(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post("/v1/solve/maze", json={"puzzle": MAZE, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    SolveResult.model_validate(result)
    return result


def _open_cells(maze: str) -> list[list[int]]:
    return [list(divmod(i, 30)) for i, ch in enumerate(maze) if ch == " "]


# ---------------------------------------------------------------------------------- results
def test_json_result_carries_the_path_fields(http: httpx.Client) -> None:
    body = _solve(http, halting="never")
    assert body["task"] == "maze" and body["model"] == MAZE_ID
    assert body["status"] == "unsolved" and body["valid"] is False is body["verifies"]
    assert len(body["answer"]) == 900 and body["steps_used"] == MAZE_STEPS
    assert body["unverified"] and not {"solution", "grid"} & set(body)
    assert len(body["answer_grid"]) == 30 and all(len(row) == 30 for row in body["answer_grid"])
    assert set(body) >= PATH_FIELDS
    assert body["shortest_length"] == int(ROW["path_length"])
    assert body["path"] == [] and body["path_complete"] is False and body["path_length"] is None


def test_broken_path_lists_its_cells_in_row_major_order(http: httpx.Client) -> None:
    body = _solve(http, puzzle=LINES, model=PAINTER_ID, max_steps=1)
    assert body["model"] == PAINTER_ID and body["steps_used"] == 1
    assert body["path"] == _open_cells(MAZE) and body["path_complete"] is False
    assert body["answer"] == MAZE.replace(" ", "o")


def test_grid_input_and_sudoku_results_unchanged(http: httpx.Client) -> None:
    grid = [list(LINES.split("\n")[r]) for r in range(30)]
    assert _solve(http, puzzle=None, grid=grid)["shortest_length"] == int(ROW["path_length"])
    sudoku = http.post("/v1/solve/sudoku", json={"puzzle": "." * 81}).json()
    assert not PATH_FIELDS & set(sudoku)


# -------------------------------------------------------------------------------- streaming
def test_sse_event_sequence(http: httpx.Client) -> None:
    body = {"puzzle": MAZE, "stream": True, "halting": "never", "model": PAINTER_ID}
    with http.stream("POST", "/v1/solve/maze", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.iter_lines())
    names = [e["event"] for e in events]
    assert names == ["solve.accepted"] + ["solve.step"] * MAZE_STEPS + ["solve.completed"]
    assert [e["id"] for e in events] == list(range(MAZE_STEPS + 2))
    assert events[0]["data"]["task"] == "maze" and events[0]["data"]["max_steps"] == MAZE_STEPS
    for step, event in enumerate(events[1:-1], start=1):
        data = StepEvent.model_validate(event["data"])
        assert data.step == step and len(data.grid) == 900 and len(data.cell_confidence) == 900
        assert data.path_cells == MAZE.count(" ") and data.path_length is None
    assert events[1]["data"]["changed"] == MAZE.count(" ") and events[2]["data"]["changed"] == 0
    completed = events[-1]["data"]
    assert completed["answer"] == events[-2]["data"]["grid"]
    assert completed["path"] == _open_cells(MAZE) and set(completed) >= PATH_FIELDS


def test_jobs_api(http: httpx.Client) -> None:
    response = http.post("/v1/jobs", json={"task": "maze", "puzzle": MAZE, "halting": "never"})
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    wait_until(lambda: http.get(location).json()["status"] == "succeeded")
    result = http.get(location).json()["result"]
    assert result["task"] == "maze" and set(result) >= PATH_FIELDS
    with http.stream("GET", f"{location}/events") as stream:
        names = [e["event"] for e in parse_sse(stream.iter_lines())]
    assert names == ["solve.accepted"] + ["solve.step"] * MAZE_STEPS + ["solve.completed"]


# ---------------------------------------------------------------------------------- errors
def _with(row: int, col: int, ch: str, maze: str = MAZE) -> str:
    i = 30 * row + col
    return maze[:i] + ch + maze[i + 1:]


BAD_MAZES = {
    "expected 900 cells, got 899": MAZE[:-1],
    "row 3 has 29 characters, expected 30": LINES.replace(LINES.split("\n")[2] + "\n",
                                                          LINES.split("\n")[2][1:] + "\n", 1),
    "bad character 'x' at row 2, column 2": _with(1, 1, "x"),
    "expected exactly one S, found 0": MAZE.replace("S", " "),
    "expected exactly one G, found 2": _with(1, 1, "G"),
    "path cells 'o' are already in the maze": _with(1, 1, "o"),
}


@pytest.mark.parametrize("message", list(BAD_MAZES))
def test_parse_errors_are_problems_naming_the_problem(http: httpx.Client, message: str) -> None:
    problem = assert_problem(http.post("/v1/solve/maze", json={"puzzle": BAD_MAZES[message]}),
                             422)
    assert message in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "puzzle"]


def test_unconnected_and_grid_errors_name_cells(http: httpx.Client) -> None:
    boxed = np.array(list(MAZE)).reshape(30, 30)
    row, col = divmod(MAZE.index("S"), 30)
    for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1)):
        boxed[r, c] = "#" if boxed[r, c] == " " else boxed[r, c]
    problem = assert_problem(http.post("/v1/solve/maze", json={"puzzle": "".join(boxed.ravel())}),
                             422)
    assert "S and G are not connected" in problem["detail"]
    assert [row, col] in problem["errors"][0]["cells"]
    grid = [list(MAZE[r * 30:(r + 1) * 30]) for r in range(30)]
    grid[0][0] = "G"
    problem = assert_problem(http.post("/v1/solve/maze", json={"grid": grid}), 422)
    assert problem["errors"][0]["loc"] == ["body", "grid"]
    assert len(problem["errors"][0]["cells"]) == 2


# --------------------------------------------------------------------------------- options
def test_attempts_and_halting_options(http: httpx.Client) -> None:
    assert _solve(http, attempts=2, halting="never")["attempts"] == 2
    assert _solve(http, max_steps=2, early_stop=False)["steps_used"] == 2
    auto = _solve(http, halting="auto", model=PAINTER_ID)
    assert auto["steps_used"] == MAZE_STEPS and not auto["halted_early"]  # never valid
    problem = assert_problem(http.post("/v1/solve/maze", json={"puzzle": MAZE, "max_steps": 4}),
                             422)
    assert problem["errors"][0]["allowed"] == [1, MAZE_STEPS]


def test_metrics_are_labelled_by_task(http: httpx.Client) -> None:
    _solve(http)
    http.post("/v1/solve/maze", json={"puzzle": "#" * 900})
    assert metric_value(http, "trm_requests_total", task="maze", model=MAZE_ID,
                        endpoint="solve", outcome="unsolved") >= 1
    assert metric_value(http, "trm_requests_total", task="maze", model=MAZE_ID,
                        outcome="invalid") >= 1
    assert metric_value(http, "trm_model_info", task="maze", model=PAINTER_ID) == 1


# ---------------------------------------------------------------------------------- agents
def test_tool_listings_cover_every_served_task(http: httpx.Client) -> None:
    openai = {t["name"]: t for t in http.get("/v1/tools").json()["data"]}
    assert set(openai) == {"solve_sudoku", "solve_maze"}
    maze = openai["solve_maze"]
    params = maze["parameters"]
    assert maze["strict"] and params["additionalProperties"] is False
    assert sorted(params["required"]) == sorted(params["properties"])
    assert "30x30" in params["properties"]["puzzle"]["description"]
    assert "81" in openai["solve_sudoku"]["parameters"]["properties"]["puzzle"]["description"]
    assert "path" in maze["description"]
    mcp = {t["name"]: t for t in http.get("/v1/tools", params={"format": "mcp"}).json()["data"]}
    assert set(mcp) == {"solve_sudoku", "solve_maze", "list_models"}
    schema = mcp["solve_maze"]["inputSchema"]
    assert schema["required"] == ["puzzle"] and "30x30" in schema["properties"]["puzzle"][
        "description"]
    assert set(mcp["solve_maze"]["outputSchema"]["properties"]) >= PATH_FIELDS


def test_mcp_solve_maze_returns_the_path_fields(server: RunningServer) -> None:
    async def main() -> Any:
        async with httpx.AsyncClient(timeout=30) as client, \
                streamable_http_client(server.base_url + "/mcp", http_client=client) as (
                    read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            return await session.call_tool("solve_maze", {"puzzle": LINES})

    result = asyncio.run(main())
    assert not result.isError
    data = result.structuredContent
    assert data is not None and data["steps_used"] <= MAZE_STEPS  # the model's own limit
    assert set(data) >= PATH_FIELDS and data["shortest_length"] == int(ROW["path_length"])
    lines = result.content[0].text.splitlines()  # type: ignore[union-attr]
    assert len(lines) == 31 and all(len(line) == 30 for line in lines[:30])  # the maze as text
    assert lines[-1].startswith("unsolved") and "the shortest route takes" in lines[-1]


def test_openapi_documents_the_maze_fields(http: httpx.Client) -> None:
    schemas = http.get("/openapi.json").json()["components"]["schemas"]
    assert set(schemas["SolveResult"]["properties"]) >= PATH_FIELDS
    assert {"path_cells", "path_length"} <= set(StepEvent.model_json_schema()["properties"])


# -------------------------------------------------------------------------------- examples
def test_maze_examples_and_generation(http: httpx.Client) -> None:
    listed = http.get("/v1/examples/maze").json()["data"]
    assert [e["name"].split(" (")[0] for e in listed][:2] == ["held-out easy #1",
                                                              "held-out easy #2"]
    assert listed[0]["puzzle"] == MAZE and len(listed) == 6
    made = http.get("/v1/examples/maze/generate", params={"difficulty": "easy", "seed": 3})
    assert made.status_code == 200, made.text
    body = made.json()
    assert body == http.get("/v1/examples/maze/generate",
                            params={"difficulty": "easy", "seed": 3}).json()
    assert 20 <= body["path_length"] <= 60 and body["object"] == "example"
    assert TASK.verify(TASK.parse(body["puzzle"]), TASK.parse_solution(body["solution"]))
    sudoku = http.get("/v1/examples/sudoku/generate", params={"difficulty": "easy"}).json()
    assert len(sudoku["puzzle"]) == 81
    assert_problem(http.get("/v1/examples/chess/generate"), 404)
    assert_problem(http.get("/v1/examples/maze/generate", params={"difficulty": "x"}), 422)

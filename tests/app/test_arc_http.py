"""ARC over real HTTP: a task the checkpoint knows is voted over its trained versions, a new
task is adapted at test time (and cached), progress streams as SSE, the jobs API carries ARC
jobs, and malformed tasks get problems naming what is wrong.

The tests on `arc_server` run against both runners (`shared_server`: local engine threads, and
a broker worker process behind Redis); those that start a server of their own run locally.

The tiny attention model is untrained: the tests check structure, counts and statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest
from arc_helpers import (
    BIG,
    KNOWN,
    KNOWN_ID,
    MAX_STEPS,
    UNSEEN,
    VERSIONS,
    load_task,
    save_tiny_arc_checkpoint,
)
from http_helpers import TERMINAL, assert_problem, parse_sse, wait_until
from in_thread import RunningServer, serve_in_thread
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from app.settings import Settings


@pytest.fixture(scope="module")
def arc_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ARC checkpoint whose sidecar names three versions of one known task."""
    return save_tiny_arc_checkpoint(tmp_path_factory.mktemp("arc-checkpoints"))


@pytest.fixture(scope="module")
def shared_overrides(arc_checkpoint_dir: Path) -> dict[str, Any]:
    """`shared_server` serves the ARC checkpoint, in both modes."""
    return {"checkpoint_dir": arc_checkpoint_dir, "max_batch_size": 4, "arc_versions": 3,
            "arc_adapt_budget_s": 1.5, "arc_adapt_max_steps": 4, "torch_threads": 1}


@pytest.fixture(scope="module")
def arc_server(shared_server: RunningServer) -> RunningServer:
    return shared_server


@pytest.fixture
def http(arc_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=arc_server.base_url, timeout=60) as client:
        yield client


@pytest.fixture
def start_arc_server(arc_checkpoint_dir: Path) -> Iterator[Callable[..., httpx.Client]]:
    """A dedicated ARC server with overridden settings; stopped after the test."""
    with contextlib.ExitStack() as stack:
        def start(**overrides: Any) -> httpx.Client:
            settings = Settings(**{"checkpoint_dir": arc_checkpoint_dir, "device": "cpu",
                                   "max_batch_size": 4, "torch_threads": 1, **overrides})
            running = stack.enter_context(serve_in_thread(settings))
            return stack.enter_context(httpx.Client(base_url=running.base_url, timeout=60))

        yield start


def check_answers(result: dict[str, Any], tests: int) -> None:
    assert result["object"] == "arc.result" and result["status"] in ("answered", "unanswered")
    assert len(result["test"]) == tests
    for answer in result["test"]:
        assert answer["predictions"] == result["versions"]
        assert len(answer["attempts"]) <= 2
        assert sum(answer["vote_counts"]) <= answer["predictions"]
        assert [a["votes"] for a in answer["attempts"]] == answer["vote_counts"][:2]
        for attempt in answer["attempts"]:
            grid = np.array(attempt["grid"])
            assert grid.ndim == 2 and ((grid >= 0) & (grid <= 9)).all()
            assert 0.0 <= attempt["confidence"] <= 1.0


def test_known_task_votes_over_trained_versions(http: httpx.Client) -> None:
    response = http.post("/v1/solve/arc", json=KNOWN)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["mode"] == "known" and result["task_id"] == KNOWN_ID
    assert result["versions"] == len(VERSIONS) and result["adapt"] is None
    assert result["steps_used"] == MAX_STEPS
    check_answers(result, len(KNOWN["test"]))


def test_known_task_is_matched_by_content_not_order(http: httpx.Client) -> None:
    shuffled = {"train": KNOWN["train"][::-1], "test": KNOWN["test"], "versions": 2}
    result = http.post("/v1/solve/arc", json=shuffled).json()
    assert result["mode"] == "known" and result["versions"] == 2


def test_unseen_task_is_adapted_then_cached(http: httpx.Client) -> None:
    first = http.post("/v1/solve/arc", json={**UNSEEN, "adapt_budget_s": 1.0}).json()
    assert first["mode"] == "adapted" and first["task_id"] is None
    report = first["adapt"]
    assert report["cached"] is False and 1 <= report["steps"] <= 4
    assert report["versions"] == first["versions"] == 3
    assert report["examples"] == 3 * len(UNSEEN["train"])
    assert 0.0 <= report["demo_exact"] <= 1.0
    check_answers(first, len(UNSEEN["test"]))
    again = http.post("/v1/solve/arc", json={**UNSEEN, "adapt_budget_s": 1.0}).json()
    assert again["adapt"]["cached"] is True
    assert again["timing"]["adapt_ms"] == 0.0 < first["timing"]["adapt_ms"]
    assert again["test"] == first["test"]  # same rows, same versions, same answers


def test_streamed_events(http: httpx.Client) -> None:
    task = load_task("concept", "ExtractObjects7")  # 3 test inputs, never seen
    with http.stream("POST", "/v1/solve/arc", json={**task, "stream": True,
                                                     "adapt_budget_s": 0.5}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.iter_lines(), stop_at=TERMINAL)
    names = [e["event"] for e in events]
    assert names[0] == "solve.accepted" and names[-1] == "solve.completed"
    accepted = events[0]["data"]
    assert accepted["mode"] == "adapted" and accepted["test_inputs"] == 3
    adapt = [e["data"] for e in events if e["event"] == "arc.adapt"]
    assert adapt and adapt[-1]["done"] is True
    progress = [e["data"] for e in events if e["event"] == "arc.progress"]
    assert len(progress) == 3 and progress[-1]["completed"] == progress[-1]["versions"] == 3
    assert names.index("arc.progress") > names.index("arc.adapt")
    assert [e["id"] for e in events] == list(range(len(events)))
    assert all(e["data"]["type"] == e["event"] for e in events)
    check_answers(events[-1]["data"], 3)


def test_jobs_api(http: httpx.Client) -> None:
    created = http.post("/v1/jobs/arc", json=KNOWN)
    assert created.status_code == 202
    location = created.headers["location"]
    wait_until(lambda: http.get(location).json()["status"] == "succeeded", timeout_s=30)
    result = http.get(location).json()["result"]
    assert result["mode"] == "known"
    events = parse_sse(http.get(f"{location}/events").iter_lines(), stop_at=TERMINAL)
    assert [e["event"] for e in events][-1] == "solve.completed"
    assert http.delete(location).status_code == 409


def test_job_bodies_match_the_openapi_document(http: httpx.Client) -> None:
    """An ARC job's `result` is an ARC result: the document says so (a union tagged by
    `object`), and the body sent validates against it."""
    spec = http.get("/openapi.json").json()
    result = spec["components"]["schemas"]["JobObject"]["properties"]["result"]
    union = next(option for option in result["anyOf"] if "oneOf" in option)
    assert union["discriminator"]["propertyName"] == "object"
    assert set(union["discriminator"]["mapping"]) == {"solve.result", "arc.result"}
    location = http.post("/v1/jobs/arc", json=KNOWN).headers["location"]
    wait_until(lambda: http.get(location).json()["status"] == "succeeded", timeout_s=30)
    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/JobObject", "components": spec["components"]})
    validator.validate(http.get(location).json())


def test_cancelled_job(http: httpx.Client) -> None:
    big = {**UNSEEN, "adapt_budget_s": 5.0, "train": UNSEEN["train"] * 2}  # a fresh digest
    location = http.post("/v1/jobs/arc", json=big).headers["location"]
    assert http.delete(location).status_code == 204
    assert http.get(location).json()["status"] == "cancelled"


def _malformed() -> list[tuple[dict[str, Any], str, list[Any]]]:
    pair = KNOWN["train"][0]
    ragged = {"input": [[1, 2], [3]], "output": pair["output"]}
    return [
        ({**KNOWN, "train": [ragged]}, "row 2 has 1 cells", ["body", "train", 0, "input", 1]),
        ({**KNOWN, "test": [{"input": [[1, 12]]}]}, "is 12; expected a colour 0-9",
         ["body", "test", 0, "input", 0, 1]),
        ({**KNOWN, "train": [{"input": [[0] * 31], "output": [[0]]}]}, "expected 1 to 30",
         ["body", "train", 0, "input", 0]),
        ({**KNOWN, "train": [{"input": [[0]] * 31, "output": [[0]]}]}, "at most 30 fit",
         ["body", "train", 0, "input"]),
        ({**KNOWN, "train": []}, "no demonstration pairs", ["body", "train"]),
        ({**KNOWN, "test": []}, "no test inputs", ["body", "test"]),
        ({**KNOWN, "versions": 10_000}, "versions must be between 1 and", ["body", "versions"]),
        # 1,000 pairs of 1x1 grids are a 31 KB body, far below the body limit.
        ({**KNOWN, "train": [{"input": [[1]], "output": [[2]]}] * 1000},
         "train has 1000 demonstration pairs; at most 16 are allowed (TRM_ARC_MAX_PAIRS)",
         ["body", "train"]),
        ({**KNOWN, "test": KNOWN["test"] * 9},
         "test has 9 test inputs; at most 8 are allowed (TRM_ARC_MAX_TEST_INPUTS)",
         ["body", "test"]),
        ({**UNSEEN, "versions": 200}, "2 demonstration pairs x 200 versions = 400 examples; at "
         "most 256 are allowed (TRM_ARC_MAX_EXAMPLES): ask for at most 128 versions",
         ["body", "versions"]),
        ({**KNOWN, "versions": True}, "valid integer", ["body", "versions"]),
        ({**KNOWN, "max_steps": "2"}, "valid integer", ["body", "max_steps"]),
        ({**KNOWN, "adapt_budget_s": "1.5"}, "valid number", ["body", "adapt_budget_s"]),
        ({**KNOWN, "timeout_ms": 1000.0}, "valid integer", ["body", "timeout_ms"]),
        ({**KNOWN, "stream": 1}, "valid boolean", ["body", "stream"]),
    ]


@pytest.mark.parametrize(("body", "message", "loc"), _malformed())
def test_malformed_tasks(http: httpx.Client, body: dict[str, Any], message: str,
                         loc: list[Any]) -> None:
    problem = assert_problem(http.post("/v1/solve/arc", json=body), 422)
    assert message in problem["detail"]
    assert problem["errors"][0]["loc"] == loc


def test_many_versions_of_a_known_task_fit_nothing(http: httpx.Client) -> None:
    result = http.post("/v1/solve/arc", json={**KNOWN, "versions": 200}).json()
    assert result["mode"] == "known"  # the examples limit is on adaptation only


# Local only: its own server with other limits (a broker stack per test is too slow).
def test_arc_is_refused_with_503_when_its_queue_is_full(
        start_arc_server: Callable[..., httpx.Client]) -> None:
    http = start_arc_server(arc_max_queue_size=1, arc_adapt_budget_s=30)
    first = http.post("/v1/jobs/arc", json=BIG)
    assert first.status_code == 202
    for refused in (http.post("/v1/jobs/arc", json=KNOWN), http.post("/v1/solve/arc", json=KNOWN)):
        problem = assert_problem(refused, 503)
        assert problem["reason"] == "queue_full" and refused.headers["retry-after"] == "2"
    metrics = http.get("/metrics").text
    assert 'trm_rejections_total{reason="queue_full",task="arc"} 2.0' in metrics
    assert http.delete(first.headers["location"]).status_code == 204
    wait_until(lambda: http.post("/v1/solve/arc", json=KNOWN).status_code == 200, timeout_s=10)


# Local only: its own server with other limits (a broker stack per test is too slow).
def test_a_full_engine_queue_delays_predictions_until_a_job_finishes(
        start_arc_server: Callable[..., httpx.Client]) -> None:
    """With room for one queued engine job, each run's second submit finds the queue full; it
    waits for a job of that engine to finish (no polling) and every version still answers."""
    http = start_arc_server(max_queue_size=1, arc_versions=3)

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=str(http.base_url), timeout=60) as client:
            return list(await asyncio.gather(*(client.post("/v1/solve/arc", json=KNOWN)
                                               for _ in range(2))))

    for response in asyncio.run(both()):
        assert response.status_code == 200
        check_answers(response.json(), len(KNOWN["test"]))


# Local only: its own server with other limits (a broker stack per test is too slow).
def test_a_client_that_leaves_frees_the_fit_within_a_micro_batch(
        start_arc_server: Callable[..., httpx.Client]) -> None:
    http = start_arc_server(arc_adapt_budget_s=30, arc_adapt_max_steps=1000,
                            arc_adapt_micro_batch=8)
    with http.stream("POST", "/v1/solve/arc", json={**BIG, "stream": True}) as response:
        lines = response.iter_lines()  # held: dropping it would close the connection now
        assert parse_sse(lines, stop_at={"solve.accepted"})
        time.sleep(0.5)  # well inside the fit's first step, which takes seconds
    # The client has left; the next fit waits for the lock until the abandoned one stops.
    result = http.post("/v1/solve/arc", json={**UNSEEN, "adapt_budget_s": 0.2}).json()
    waited_s = result["timing"]["adapt_ms"] / 1000 - result["adapt"]["seconds"]
    assert waited_s < 1.5


def test_missing_output_is_a_schema_error(http: httpx.Client) -> None:
    problem = assert_problem(http.post("/v1/solve/arc", json={**KNOWN, "train": [
        {"input": [[1]]}]}), 422)
    assert problem["errors"][0]["loc"] == ["body", "train", 0, "output"]


def test_agent_tools(arc_server: RunningServer, http: httpx.Client) -> None:
    tools = http.get("/v1/tools").json()["data"]
    (arc,) = [t for t in tools if t["name"] == "solve_arc"]
    parameters = arc["parameters"]
    assert arc["strict"] and parameters["additionalProperties"] is False
    assert set(parameters["required"]) == set(parameters["properties"]) >= {"train", "test"}

    async def call(session: ClientSession) -> Any:
        listed = {t.name for t in (await session.list_tools()).tools}
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        result = await session.call_tool("solve_arc", {**KNOWN, "versions": 2},
                                         progress_callback=on_progress)
        return listed, progress, result

    async def main() -> Any:
        async with httpx.AsyncClient(timeout=60) as client, \
                streamable_http_client(f"{arc_server.base_url}/mcp", http_client=client) as (
                    read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            return await call(session)

    listed, progress, result = asyncio.run(main())
    assert "solve_arc" in listed and not result.isError
    assert result.structuredContent["mode"] == "known"
    assert progress == [1, 2]
    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
    assert "attempt 1" in text and "trained on" in text


# Local only: a server with no checkpoints at all.
def test_no_arc_checkpoint_is_404_like_any_task_without_a_model(tmp_path: Path) -> None:
    settings = Settings(checkpoint_dir=tmp_path, device="cpu", warmup=False)
    with serve_in_thread(settings, wait_ready=False) as running, \
            httpx.Client(base_url=running.base_url, timeout=30) as client:
        started = time.monotonic()
        while not running.service.registry.loaded and time.monotonic() - started < 10:
            time.sleep(0.05)
        problem = assert_problem(client.post("/v1/solve/arc", json=KNOWN), 404)
        assert "no model is loaded for task 'arc'" in problem["detail"]
        maze = assert_problem(client.post("/v1/solve/maze", json={"puzzle": "#"}), 404)
        assert maze["type"] == problem["type"]

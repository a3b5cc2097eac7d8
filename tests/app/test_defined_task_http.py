"""Your own task, end to end: a small data set written by a command, split, trained into a
tiny checkpoint, then served over real HTTP from that checkpoint alone (the task is not
registered in the process before the service reads its card): listed, solved, streamed,
run as a job, scored by `trm eval --url`, offered as a tool over HTTP and MCP, and its bad
inputs named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from http_helpers import assert_problem, parse_sse, wait_until
from in_thread import RunningServer, serve_in_thread
from mcp import ClientSession
from mcp.types import TextContent
from mcp_helpers import with_session
from trm_client import Client

from app.settings import Settings
from training.cli import main
from trm_core.tasks import TASKS, unregister

TINY = ["--set", "model.hidden_size=16", "--set", "model.max_supervision_steps=3",
        "--set", "train.total_steps=4", "--set", "train.eval_every=4",
        "--set", "train.batch_size=8", "--set", "train.warmup_steps=1",
        "--set", "train.eval_puzzles=16", "--set", "train.time_limit_s=0"]


@pytest.fixture(scope="module")
def life(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("own") / "life"
    assert main(["task", "example", "life", "--dir", str(folder), "--count", "120"]) == 0
    assert main(["data", str(folder)]) == 0
    assert main(["train", str(folder), *TINY]) == 0
    unregister("life")  # the service must bring the task back from the card alone
    return folder


@pytest.fixture(scope="module")
def server(life: Path) -> Iterator[RunningServer]:
    settings = Settings(checkpoint_dir=life / "checkpoint", device="cpu")
    try:
        with serve_in_thread(settings) as running:
            yield running
    finally:
        unregister("life")


def test_the_folder_holds_splits_a_run_config_and_the_checkpoint(life: Path) -> None:
    split = json.loads((life / "split.json").read_text())
    assert split["splits"] == {"test": 12, "val": 12, "train": 96}
    assert split["disjoint_under"] == ["dihedral"]
    assert 'token_mixer = "conv"' in (life / "run.toml").read_text()
    card = json.loads((life / "checkpoint" / "trm-life.json").read_text())
    assert card["task"] == "life" and card["task_spec"]["input"]["wrap"] is True
    assert card["model"]["conv_padding"] == "circular"


def test_the_service_lists_and_solves_the_task(server: RunningServer, life: Path) -> None:
    assert "life" in TASKS  # registered from the card when the service loaded it
    models = httpx.get(server.base_url + "/v1/models").json()["data"]
    assert [(m["task"], m["task_spec"]["name"]) for m in models] == [("life", "life")]
    example = httpx.get(server.base_url + "/v1/examples/life").json()["data"][0]
    reply = httpx.post(server.base_url + "/v1/solve/life",
                       json={"puzzle": example["puzzle"], "halting": "never"}, timeout=60)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "answered" and body["unverified"] is True
    assert "solution" not in body or body["solution"] is None
    assert len(body["answer"]) == 100 and len(body["output"]) == 10
    assert "".join("".join(row) for row in body["output"]) == body["answer"]
    assert body["steps_used"] == 3


def test_a_solve_streams_every_step(server: RunningServer) -> None:
    rows = [".#........", "..#.......", "###.......", *["." * 10] * 7]
    with httpx.stream("POST", server.base_url + "/v1/solve/life",
                      json={"grid": rows, "stream": True, "halting": "never"},
                      timeout=60) as response:
        assert response.status_code == 200
        events = parse_sse(response.iter_lines())
    names = [e["event"] for e in events]
    assert names == ["solve.accepted", "solve.step", "solve.step", "solve.step",
                     "solve.completed"]
    assert all(len(e["data"]["grid"]) == 100 for e in events[1:4])
    assert events[-1]["data"]["status"] == "answered"


def test_the_python_client_reads_the_answer(server: RunningServer) -> None:
    rows = [".#........", "..#.......", "###.......", *["." * 10] * 7]
    with Client(server.base_url) as client:
        result = client.solve("life", rows, halting="never")
    assert result.status == "answered" and result.unverified and result.solution is None
    assert result.output is not None and len(result.output) == 10


def test_bad_inputs_are_named(server: RunningServer) -> None:
    bad = httpx.post(server.base_url + "/v1/solve/life",
                     json={"puzzle": "x" + "." * 99}, timeout=30)
    problem = assert_problem(bad, 422)
    assert "unknown symbol 'x' at row 1, column 1" in json.dumps(problem)
    short = httpx.post(server.base_url + "/v1/solve/life", json={"puzzle": "." * 99},
                       timeout=30)
    assert "got one line of 99" in json.dumps(assert_problem(short, 422))


def test_a_job_runs_the_task(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        created = http.post("/v1/jobs", json={"task": "life", "puzzle": "." * 100})
        assert created.status_code == 202, created.text
        location = created.headers["location"]
        wait_until(lambda: http.get(location).json()["status"] not in ("queued", "running"))
        job = http.get(location).json()
    assert job["status"] == "succeeded" and job["result"]["status"] == "answered"


def test_the_task_is_offered_as_a_tool_over_http_and_mcp(server: RunningServer) -> None:
    tools = httpx.get(server.base_url + "/v1/tools").json()
    text = json.dumps(tools)
    assert "solve_life" in text
    assert "a 10x10 grid over the symbols '.', '#'" in text
    assert "no rule check" in text

    async def body(session: ClientSession) -> tuple[list[str], str]:
        listed = [tool.name for tool in (await session.list_tools()).tools]
        called = await session.call_tool("solve_life", {"puzzle": "." * 100})
        return listed, "\n".join(b.text for b in called.content if isinstance(b, TextContent))

    listed, answer = with_session(server.base_url + "/mcp", body)
    assert "solve_life" in listed
    assert "unverified: the task has no rules check" in answer


def test_eval_scores_the_service_like_the_checkpoint(server: RunningServer, life: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    local, remote = life / "local.json", life / "remote.json"
    assert main(["eval", str(life / "checkpoint" / "trm-life"), "--data",
                 str(life / "test.csv"), "--json", str(local), "--dtype", "float32"]) == 0
    assert main(["eval", "--url", server.base_url, "--data", str(life / "test.csv"),
                 "--json", str(remote)]) == 0
    capsys.readouterr()
    assert json.loads(remote.read_text())["overall"]["puzzles"] == 12
    assert json.loads(local.read_text())["overall"]["puzzles"] == 12

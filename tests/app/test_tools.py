"""`GET /v1/tools`: strict OpenAI function tools generated from the request schema, the MCP
listing, and the README's agent loop run with a scripted model turn (no network, no LLM)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from in_thread import serve_in_thread
from shipped_models import tiny_only

from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README_PUZZLE = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    settings = Settings(checkpoint_dir=tiny_only(), device="cpu", max_batch_size=4)
    with serve_in_thread(settings) as running, \
            httpx.Client(base_url=running.base_url, timeout=30) as client:
        yield client


def _check_strict(schema: dict[str, Any]) -> None:
    """The rules OpenAI's strict mode sets for an object schema."""
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert sorted(schema["required"]) == sorted(schema["properties"])
    for prop in schema["properties"].values():
        assert "default" not in prop and "title" not in prop


def test_openai_tools_are_strict_and_optional_fields_nullable(http: httpx.Client) -> None:
    body = http.get("/v1/tools").json()
    assert body["format"] == "openai"
    [tool] = body["data"]
    assert tool["type"] == "function" and tool["name"] == "solve_sudoku" and tool["strict"]
    params = tool["parameters"]
    _check_strict(params)
    assert params["properties"]["puzzle"]["type"] == "string"
    for optional in ("max_steps", "halting", "attempts", "model"):
        assert {"type": "null"} in params["properties"][optional]["anyOf"]
    assert {"enum": ["auto", "never"], "type": "string"} in params["properties"]["halting"][
        "anyOf"]


def test_mcp_format_matches_the_mcp_listing(http: httpx.Client) -> None:
    tools = {t["name"]: t for t in http.get("/v1/tools", params={"format": "mcp"}).json()["data"]}
    assert set(tools) == {"solve_sudoku", "list_models"}
    assert tools["solve_sudoku"]["annotations"]["readOnlyHint"] is True
    assert http.get("/v1/tools", params={"format": "yaml"}).status_code == 422


def scripted_model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """Stands in for an LLM: first asks for the tool, then answers from the tool's output."""
    outputs = [m for m in messages if m.get("type") == "function_call_output"]
    if not outputs:
        assert tools[0]["name"] == "solve_sudoku"
        arguments = {"puzzle": README_PUZZLE, "max_steps": None, "halting": "auto",
                     "attempts": None, "model": None}  # strict mode: every key, nulls allowed
        return {"type": "function_call", "call_id": "call_1", "name": "solve_sudoku",
                "arguments": json.dumps(arguments)}
    result = json.loads(outputs[-1]["output"])
    return {"type": "message", "content": f"Solved ({result['status']}): {result['solution']}"}


def run_tool(http: httpx.Client, name: str, arguments: str) -> str:
    """The README's glue: a tool call becomes a solve request; problems go back as text too."""
    task = name.removeprefix("solve_")
    args = {k: v for k, v in json.loads(arguments).items() if v is not None}
    response = http.post(f"/v1/solve/{task}", json=args)
    return response.text


def test_agent_loop_with_a_scripted_model_turn(http: httpx.Client) -> None:
    tools = http.get("/v1/tools", params={"format": "openai"}).json()["data"]
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"Solve {README_PUZZLE}"}]
    for _ in range(4):  # bounded, like any agent loop
        turn = scripted_model(messages, tools)
        messages.append(turn)
        if turn["type"] != "function_call":
            break
        output = run_tool(http, turn["name"], turn["arguments"])
        messages.append({"type": "function_call_output", "call_id": turn["call_id"],
                         "output": output})
    final = messages[-1]
    assert final["type"] == "message"
    assert final["content"].startswith("Solved (solved): 4839216579")


def test_a_tool_call_with_a_bad_puzzle_returns_the_problem(http: httpx.Client) -> None:
    output = json.loads(run_tool(http, "solve_sudoku", json.dumps({"puzzle": "55" + "." * 79})))
    assert output["status"] == 422 and "appears twice in row 1" in output["detail"]


def test_an_unsolved_answer_that_breaks_the_rules_still_renders() -> None:
    """Model answers may repeat digits; rendering them must not apply a user puzzle's checks."""
    from app.agents import render_result

    result = {"status": "unsolved", "steps_used": 16, "halted_early": False,
              "unverified": True, "answer": "1" * 81, "answer_grid": [[1] * 9] * 9,
              "conflicts": [[r, c] for r in range(9) for c in range(9)]}
    text = render_result("sudoku", result)
    verdict = text.splitlines()[-1]
    assert text.startswith("1 1 1 | 1 1 1 | 1 1 1") and verdict.startswith("unsolved")
    assert "unverified: 81 cells break a rule (r1c1, r1c2" in verdict
    assert "halting='never'" not in verdict  # every step already ran

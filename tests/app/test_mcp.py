"""The MCP endpoint through the official SDK client over real HTTP (streamable HTTP transport)
against real uvicorn with the shipped checkpoint: tool listing, a verified solve with per-step
progress, tool errors carrying the HTTP API's messages, metrics, API keys and the Host guard."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_helpers import metric_value
from in_thread import RunningServer, serve_in_thread
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent
from mcp_helpers import with_session
from shipped_models import tiny_only

from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README_PUZZLE = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."
README_SOLUTION = (
    "483921657967345821251876493548132976729564138136798245372689514814253769695417382")


def _settings(**overrides: Any) -> Settings:
    return Settings(checkpoint_dir=tiny_only(), device="cpu", max_batch_size=4,
                    **overrides)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_in_thread(_settings()) as running:
        yield running


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def test_lists_the_solve_tool_and_list_models(server: RunningServer) -> None:
    async def body(session: ClientSession) -> Any:
        return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in with_session(server.base_url + "/mcp", body)}
    assert set(tools) == {"solve_sudoku", "list_models"}
    solve = tools["solve_sudoku"]
    assert solve.annotations is not None
    assert solve.annotations.readOnlyHint and solve.annotations.idempotentHint
    assert solve.annotations.openWorldHint is False
    assert solve.inputSchema["required"] == ["puzzle"]
    assert set(solve.inputSchema["properties"]) == {"puzzle", "max_steps", "halting", "attempts"}
    assert solve.outputSchema is not None and "solution" in solve.outputSchema["properties"]


def test_solves_with_progress_and_structured_result(server: RunningServer) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def body(session: ClientSession) -> CallToolResult:
        return await session.call_tool(
            "solve_sudoku", {"puzzle": README_PUZZLE, "halting": "never", "max_steps": 6},
            progress_callback=on_progress)

    result = with_session(server.base_url + "/mcp", body)
    assert not result.isError, _text(result)
    data = result.structuredContent
    assert data is not None
    assert data["object"] == "solve.result" and data["status"] == "solved" and data["valid"]
    assert data["solution"] == README_SOLUTION and data["steps_used"] == 6
    assert data["model"] == "trm-sudoku-tiny@1"
    assert not {"type", "sequence_number"} & set(data)  # stream-only members stay in streams
    text = _text(result)
    assert text.endswith("solved and verified in 6 steps")
    assert "4 8 3" in text.splitlines()[0].replace("|", " ").replace("  ", " ")
    assert [(done, total) for done, total, _ in progress] == [(s, 6) for s in range(1, 7)]
    assert all(message and message.startswith(f"step {int(done)}:")
               for done, _, message in progress)
    assert metric_value(httpx.Client(base_url=server.base_url), "trm_requests_total",
                        endpoint="mcp", outcome="solved") >= 1


def test_a_bad_puzzle_is_a_tool_error_naming_the_problem(server: RunningServer) -> None:
    async def body(session: ClientSession) -> list[CallToolResult]:
        return [await session.call_tool("solve_sudoku", {"puzzle": "55" + "." * 79}),
                await session.call_tool("solve_sudoku", {"puzzle": "1" * 12}),
                await session.call_tool("solve_sudoku", {"puzzle": README_PUZZLE,
                                                         "max_steps": 99})]

    duplicate, short, steps = with_session(server.base_url + "/mcp", body)
    assert duplicate.isError and "digit 5 appears twice in row 1" in _text(duplicate)
    assert short.isError and "81" in _text(short)
    assert steps.isError and "max_steps" in _text(steps)


def test_list_models(server: RunningServer) -> None:
    async def body(session: ClientSession) -> CallToolResult:
        return await session.call_tool("list_models", {})

    result = with_session(server.base_url + "/mcp", body)
    assert result.structuredContent is not None
    assert [m["id"] for m in result.structuredContent["data"]] == ["trm-sudoku-tiny@1"]


def test_api_keys_guard_mcp_and_hosts_are_checked() -> None:
    with serve_in_thread(_settings(api_keys=["k1"])) as running:
        url = running.base_url + "/mcp"
        denied = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                            headers={"accept": "application/json, text/event-stream"})
        assert denied.status_code == 401

        async def body(session: ClientSession) -> Any:
            return (await session.list_tools()).tools

        assert len(with_session(url, body, headers={"Authorization": "Bearer k1"})) == 2
        rebinding = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                               headers={"accept": "application/json, text/event-stream",
                                        "host": "attacker.example", "x-api-key": "k1"})
        assert rebinding.status_code == 421


def test_server_info_names_this_service_and_its_version() -> None:
    import trm_core

    async def main(url: str) -> Any:
        async with httpx.AsyncClient(timeout=30) as http, \
                streamable_http_client(url, http_client=http) as (read, write, _), \
                ClientSession(read, write) as session:
            return (await session.initialize()).serverInfo

    with serve_in_thread(_settings()) as running:
        info = asyncio.run(main(running.base_url + "/mcp"))
    assert info.name == "trm-serve" and info.version == trm_core.__version__

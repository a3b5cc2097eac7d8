"""The MCP server at `/mcp` (streamable HTTP, official `mcp` SDK): one `solve_<task>` tool per
task and `list_models`.

Tools solve through `app.agents.solve_with_steps`, the same service path as HTTP, report each
supervision step as MCP progress, and answer with the HTTP result object as structured content
plus the rendered grid and a one-line verdict as text. Refusals become tool errors carrying the
HTTP API's messages. The API-key middleware guards `/mcp` like every other non-public route.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any, Literal

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

import trm_core
from app.agents import (
    problem_message,
    puzzle_description,
    render_result,
    solve_with_steps,
    tool_description,
    tool_name,
)
from app.errors import ApiError
from app.schemas import ModelList, SolveRequest, SolveResult
from app.service import SolveService
from app.settings import Settings
from app.task_apis import OWN_TOOLS

log = logging.getLogger(__name__)
MCP_PATH = "/mcp"
INSTRUCTIONS = ("Tiny Recursive Models that solve grid puzzles. Call solve_<task> with the "
                "puzzle as a compact string; status 'solved' means the answer was verified "
                "against the rules. list_models says what is loaded.")
READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False,
                            destructiveHint=False)
SolveToolResult = Annotated[CallToolResult, SolveResult]


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding guard answers 421 to any Host it does not know (and 403 to an
    unknown Origin), so it gets the hosts the whole app accepts (app/middleware.py checks them
    first); "*" turns it off."""
    hosts = list(settings.allowed_hosts)
    # The SDK reads `name:*` as "some port"; the app's guard also lets it mean "no port".
    hosts += [host.removesuffix(":*") for host in hosts if host.endswith(":*")]
    if "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                     allowed_hosts=hosts, allowed_origins=origins)


def _solve_tool(service: SolveService, task: str) -> Any:
    """The tool function for one task (FastMCP reads its signature for the input schema).
    `max_steps` defaults to None, the model's own limit, which differs between checkpoints."""

    async def solve(puzzle: str, ctx: Context,  # type: ignore[type-arg]
                    max_steps: int | None = None, halting: Literal["auto", "never"] = "auto",
                    attempts: int = 1) -> SolveToolResult:
        try:
            request = SolveRequest.model_validate({"puzzle": puzzle, "max_steps": max_steps,
                                                   "halting": halting, "attempts": attempts})
        except ValidationError as exc:
            raise ToolError(str(exc)) from None

        async def progress(step: dict[str, Any]) -> None:
            message = (f"step {step['step']}: {step['changed']} cells changed, "
                       f"q_halt {step['q_halt']:.2f}, valid {str(step['valid']).lower()}")
            await ctx.report_progress(step["step"], step["max_steps"], message)

        request_id = f"mcp-{ctx.request_id}-{uuid.uuid4().hex[:8]}"
        try:
            result = await solve_with_steps(service, task, request, request_id, progress)
        except ApiError as exc:
            raise ToolError(problem_message(exc)) from None
        text = TextContent(type="text", text=render_result(task, result))
        return CallToolResult(content=[text], structuredContent=result, isError=False)

    # The puzzle's format differs per task; its description goes into the input schema.
    solve.__annotations__["puzzle"] = Annotated[str, Field(description=puzzle_description(task))]
    return solve


def build_mcp(service: SolveService, settings: Settings) -> FastMCP:  # type: ignore[type-arg]
    """A FastMCP server whose streamable HTTP endpoint is `MCP_PATH`."""
    server: FastMCP = FastMCP(  # type: ignore[type-arg]
        "trm-serve", instructions=INSTRUCTIONS, streamable_http_path=MCP_PATH,
        # Stateless: each call stands alone, so any replica behind a balancer can answer it.
        stateless_http=True, transport_security=transport_security(settings))
    # serverInfo.version in the initialize answer: ours, not the SDK's (its fallback).
    server._mcp_server.version = trm_core.__version__
    for task in service.registry.served_tasks():
        own = OWN_TOOLS.get(task)
        if own is not None:  # not a puzzle string: the task's own arguments (app/task_apis.py)
            server.add_tool(own.mcp_tool(service), name=own.name, title=own.title,
                            description=own.description, annotations=READ_ONLY,
                            structured_output=True)
            continue
        server.add_tool(_solve_tool(service, task), name=tool_name(task),
                        title=f"Solve {task}", description=tool_description(task),
                        annotations=READ_ONLY, structured_output=True)

    async def list_models() -> ModelList:
        """The loaded models: id, task, maximum supervision steps, device, batching."""
        registry = service.registry
        defaults = set(registry.defaults.values())
        return ModelList.model_validate(
            {"object": "list",
             "data": [e.describe(e.id in defaults) for e in registry.entries.values()]})

    server.add_tool(list_models, name="list_models", title="List models",
                    annotations=READ_ONLY, structured_output=True)
    return server

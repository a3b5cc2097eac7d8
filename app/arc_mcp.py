"""The MCP `solve_arc` tool: the same admission, engine path and result as `POST /v1/solve/arc`,
with adaptation steps and answered versions reported as MCP progress."""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError

from app import errors
from app.agents import problem_message, result_of
from app.arc_schemas import ArcPair, ArcResult, ArcSolveRequest, ArcTestInput
from app.arc_service import ArcService
from app.arc_tools import render_arc_result
from app.errors import ApiError
from app.service import SolveService

ArcToolResult = Annotated[CallToolResult, ArcResult]


def arc_tool(service: SolveService) -> Any:
    """The tool function (FastMCP reads its signature for the input schema)."""

    async def solve_arc(train: list[ArcPair], test: list[ArcTestInput],
                        ctx: Context,  # type: ignore[type-arg]
                        versions: int | None = None, adapt_budget_s: float | None = None,
                        model: str | None = None) -> ArcToolResult:
        try:
            request = ArcSolveRequest.model_validate(
                {"train": train, "test": test, "versions": versions,
                 "adapt_budget_s": adapt_budget_s, "model": model})
        except ValidationError as exc:
            raise ToolError(str(exc)) from None
        request_id = f"mcp-{ctx.request_id}-{uuid.uuid4().hex[:8]}"
        try:
            result = await _solve(service, request, request_id, ctx)
        except ApiError as exc:
            raise ToolError(problem_message(exc)) from None
        text = TextContent(type="text", text=render_arc_result(result))
        return CallToolResult(content=[text], structuredContent=result, isError=False)

    return solve_arc


async def _solve(service: SolveService, request: ArcSolveRequest, request_id: str,
                 ctx: Context) -> dict[str, Any]:  # type: ignore[type-arg]
    """Follow the request's events; progress counts adaptation steps, then versions answered."""
    record = ArcService.of(service).admit(request, kind="mcp", request_id=request_id,
                                          keep_events=True)
    events = service.events(record, after=-1, cancel_on_close=True)
    adapt_steps = 0
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            data = {} if event is None else event.data
            name = None if event is None else event.name
            if name == "arc.adapt" and not data["done"]:
                adapt_steps = data["step"]
                await ctx.report_progress(adapt_steps, None, f"adapting: step {data['step']}, "
                                          f"demonstrations exact {data['demo_exact']:.2f}")
            elif name == "arc.progress":
                await ctx.report_progress(adapt_steps + data["completed"], None,
                                          f"{data['completed']} of {data['versions']} versions "
                                          "answered")
            elif name == "solve.completed":
                return result_of(data)
            elif name == "solve.failed":
                raise ApiError.from_problem(data)
            elif name == "solve.cancelled":
                raise errors.client_gone()
    raise errors.internal("the ARC request ended without a result")

"""`GET /v1/tools`: the solve tools as OpenAI function-calling definitions or as the MCP server
lists them, both generated from the request schemas."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from app.task_apis import openai_tools

router = APIRouter(tags=["agents"])


@router.get("/v1/tools")
async def tools(request: Request,
                format: Literal["openai", "mcp"] = Query(
                    "openai", description="openai: strict function tools; mcp: the tools "
                                          "/mcp lists")) -> dict[str, Any]:
    """Tool definitions an agent framework can hand to a model."""
    if format == "openai":
        tasks = request.app.state.service.registry.served_tasks()
        return {"object": "list", "format": format, "data": openai_tools(tasks)}
    listed = await request.app.state.mcp.list_tools()
    return {"object": "list", "format": format,
            "data": [tool.model_dump(mode="json", by_alias=True, exclude_none=True)
                     for tool in listed]}

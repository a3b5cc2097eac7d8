"""`GET /v1/tools`: the solve tools as OpenAI function-calling definitions or as the MCP server
lists them, both generated from the request schemas."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from app.agents import openai_tools
from trm_core.tasks import TASKS

router = APIRouter(tags=["agents"])


@router.get("/v1/tools")
async def tools(request: Request,
                format: Literal["openai", "mcp"] = Query(
                    "openai", description="openai: strict function tools; mcp: the tools "
                                          "/mcp lists")) -> dict[str, Any]:
    """Tool definitions an agent framework can hand to a model."""
    if format == "openai":
        return {"object": "list", "format": format, "data": openai_tools(sorted(TASKS))}
    listed = await request.app.state.mcp.list_tools()
    return {"object": "list", "format": format,
            "data": [tool.model_dump(mode="json", by_alias=True, exclude_none=True)
                     for tool in listed]}

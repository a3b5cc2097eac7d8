"""Tasks whose requests are not one puzzle string (ARC: demonstration pairs) have an API of their
own in app/: routes (app/routes/<task>.py), an OpenAI function tool and an MCP tool.
This module is the one place app/ maps such a task's name to its routes and tools; tasks that
solve puzzle strings need nothing here, as the generic routes and tools serve every one of them.
(The work such a task runs is its job kind, registered in `app.task_jobs`.)

`openai_tools` and `add_mcp_tools` are what `GET /v1/tools` and the MCP server call: the
generic `solve_<task>` tool for puzzle-string tasks, the task's own tool for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from app import arc_mcp, arc_tools
from app.agents import agent_parameters, strict_schema, tool_description, tool_name
from app.routes import arc
from app.service import SolveService


@dataclass(frozen=True)
class OwnTools:
    """A task's own agent tools: name, title and description, the OpenAI definition, and a
    factory of the MCP tool function for a service."""

    name: str
    title: str
    description: str
    openai_tool: Callable[[], dict[str, Any]]
    mcp_tool: Callable[[SolveService], Any]


OWN_TOOLS: dict[str, OwnTools] = {
    "arc": OwnTools(arc_tools.TOOL_NAME, "Solve an ARC task", arc_tools.DESCRIPTION,
                    arc_tools.arc_openai_tool, arc_mcp.arc_tool),
}

# Included before the generic routes: a task's /v1/solve/<task> wins over /v1/solve/{task}.
OWN_ROUTES: dict[str, APIRouter] = {"arc": arc.router}


def openai_tools(tasks: list[str]) -> list[dict[str, Any]]:
    """Function-calling definitions (OpenAI Responses / Chat Completions `tools`), one per
    served task."""
    return [OWN_TOOLS[task].openai_tool() if task in OWN_TOOLS else
            {"type": "function", "name": tool_name(task), "description": tool_description(task),
             "strict": True, "parameters": strict_schema(agent_parameters(task))}
            for task in tasks]

"""What agents see: solving with per-step callbacks through the service, the one-line verdict and
text rendering of a result, and tool definitions generated from `SolveRequest` (the generic
`solve_<task>` tool; tasks with tools of their own are listed in `app.task_apis`).

The MCP server (`app.mcp_server`) and `GET /v1/tools` both build on this module, so an MCP tool
and an OpenAI function tool accept the same arguments and answer with the same result object as
`POST /v1/solve/{task}`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Awaitable, Callable
from typing import Any

from app import errors
from app.errors import ApiError
from app.schemas import SolveRequest
from app.service import SolveService
from trm_core.tasks import TASKS

# The request fields an agent may set; the rest (grid, stream, return_steps, timeouts, noise)
# are transport or research knobs that only confuse a tool-calling model.
AGENT_FIELDS = ("puzzle", "max_steps", "halting", "attempts", "model")
StepCallback = Callable[[dict[str, Any]], Awaitable[None]]

def tool_name(task: str) -> str:
    return f"solve_{task}"


def puzzle_description(task: str) -> str:
    """What a solve tool's `puzzle` argument holds for `task` (`Task.puzzle_format`)."""
    return TASKS[task].puzzle_format or f"the {task} puzzle as a compact string"


def tool_description(task: str) -> str:
    return (f"Solve a {task} puzzle with a Tiny Recursive Model. The network refines the whole "
            f"answer over up to max_steps supervision steps; every answer is checked against "
            f"the rules, so status 'solved' means verified. Puzzle: {puzzle_description(task)}."
            f"{_answer_note(task)}")


def _answer_note(task: str) -> str:
    """What the task's answer holds beyond the common fields (`Task.answer_note`)."""
    note = TASKS[task].answer_note
    return f" {note}" if note else ""


async def solve_with_steps(service: SolveService, task: str, request: SolveRequest,
                           request_id: str, on_step: StepCallback) -> dict[str, Any]:
    """Solve through the same admission and engine path as HTTP (metrics say endpoint="mcp"),
    calling `on_step` with each `solve.step` event; raises `ApiError` for every refusal."""
    record = service.admit(task, request, kind="mcp", request_id=request_id, keep_events=True)
    events = service.events(record, after=-1, cancel_on_close=True)
    # aclosing: a caller that gives up (cancelled tool call) cancels the engine job at once.
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            if event is None:
                continue
            if event.name == "solve.step":
                await on_step(event.data)
            elif event.name == "solve.completed":
                return result_of(event.data)
            elif event.name == "solve.failed":
                raise ApiError.from_problem(event.data)
            elif event.name == "solve.cancelled":
                raise errors.client_gone()
    raise errors.internal("the solve ended without a result")


# Members every event payload carries for stream readers (`type`, `sequence_number`); a result
# handed to an agent is the §7.1 object without them.
STREAM_FIELDS = ("type", "sequence_number")


def result_of(completed: dict[str, Any]) -> dict[str, Any]:
    """The result object inside a `solve.completed` event's data."""
    return {key: value for key, value in completed.items() if key not in STREAM_FIELDS}


def verdict(result: dict[str, Any]) -> str:
    """One line a person or a model can act on."""
    steps = result["steps_used"]
    unit = "step" if steps == 1 else "steps"
    if result["status"] == "solved":
        return f"solved and verified in {steps} {unit}"
    if result["status"] == "answered":
        return (f"answered in {steps} {unit}, unverified: the task has no rules check, so the "
                f"answer is the model's best guess")
    # Running every step is only worth suggesting when the run stopped early.
    hint = "halting='never', " if result.get("halted_early") else ""
    return (f"unsolved: the answer after {steps} {unit} is unverified: "
            f"{_what_breaks(result)}; try {hint}more attempts, a larger budget_steps, or an "
            f"easier puzzle")


def _what_breaks(result: dict[str, Any]) -> str:
    """Which cells break a rule, or how a drawn path falls short (mazes)."""
    if "path_complete" in result:
        return f"its path is not a shortest S-G path{_path_note(result)}"
    conflicts = result.get("conflicts")
    if not conflicts:
        return "it breaks the rules or misses cells"
    cells = ", ".join(f"r{r + 1}c{c + 1}" for r, c in conflicts[:8])
    more = f" and {len(conflicts) - 8} more" if len(conflicts) > 8 else ""
    return f"{len(conflicts)} cells break a rule ({cells}{more})"


def _path_note(result: dict[str, Any]) -> str:
    """How a drawn path falls short, for results that carry one (mazes)."""
    if "path_complete" not in result:
        return ""
    if result["path_complete"]:
        return (f"; the path takes {result['path_length']} steps, the shortest "
                f"{result['shortest_length']}")
    return (f"; {len(result['path'])} path cells do not join S to G, the shortest route takes "
            f"{result['shortest_length']} steps")


def render_result(task: str, result: dict[str, Any]) -> str:
    """The answer (verified or not) as the task's text grid followed by the verdict."""
    cells = TASKS[task].from_grid(result["grid"] if result["status"] == "solved"
                                  else result["answer_grid"])
    return f"{TASKS[task].render(cells)}\n{verdict(result)}"


def problem_message(error: ApiError) -> str:
    """An `ApiError` as one message: its detail plus every field-level problem."""
    parts = [error.detail]
    for entry in error.errors or []:
        msg = str(entry.get("msg", ""))
        if msg and msg not in error.detail:
            parts.append(msg)
    return "; ".join(parts)


# ----------------------------------------------------------------------- tool definitions

def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI strict mode: no defaults or titles, every property required (optional ones are
    already nullable), no additional properties."""
    schema = copy.deepcopy(schema)
    for prop in schema["properties"].values():
        prop.pop("default", None)
        prop.pop("title", None)
    schema["required"] = list(schema["properties"])
    schema["additionalProperties"] = False
    schema.pop("title", None)
    return schema


def agent_parameters(task: str) -> dict[str, Any]:
    """The JSON schema of a solve tool's arguments, cut from `SolveRequest`'s own schema."""
    full = SolveRequest.model_json_schema()
    properties = {name: full["properties"][name] for name in AGENT_FIELDS}
    # `puzzle` is optional in the request only because `grid` may replace it; tools use puzzle.
    properties["puzzle"] = {"type": "string", "description": puzzle_description(task)}
    return {"type": "object", "properties": properties}


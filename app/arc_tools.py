"""The ARC solve tool as agents see it: its OpenAI strict function definition and the text an
agent reads back. An ARC task is a set of grids, not a puzzle string, so it has its own
arguments instead of the generic solve tool's `puzzle`.
"""

from __future__ import annotations

from typing import Any

TOOL_NAME = "solve_arc"
DESCRIPTION = (
    "Answer an ARC-AGI task with a Tiny Recursive Model: give its demonstration pairs (train) "
    "and test inputs (test) as grids, lists of rows of colours 0-9, at most 30x30. Returns up to "
    "2 attempts per test input, each with the number of augmented versions that voted for it. "
    "A task the model was trained on is recognised by its demonstrations; any other task is "
    "learnt from its demonstrations first (test-time adaptation, within adapt_budget_s).")
_GRID = {"type": "array", "description": "rows of colours 0-9",
         "items": {"type": "array", "items": {"type": "integer"}}}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """A strict-mode object: every property required, nothing else allowed."""
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def arc_parameters() -> dict[str, Any]:
    """The tool's arguments as a strict JSON schema (optional ones nullable)."""
    return _object({
        "train": {"type": "array", "description": "demonstration pairs, at least one",
                  "items": _object({"input": _GRID, "output": _GRID})},
        "test": {"type": "array", "description": "test inputs, at least one",
                 "items": _object({"input": _GRID})},
        "versions": {"type": ["integer", "null"],
                     "description": "augmented versions voted over (null: the server's default)"},
        "adapt_budget_s": {"type": ["number", "null"],
                           "description": "seconds to learn a new task (null: the default)"},
        "model": {"type": ["string", "null"], "description": "model id or name (null: default)"},
    })


def arc_openai_tool() -> dict[str, Any]:
    return {"type": "function", "name": TOOL_NAME, "description": DESCRIPTION, "strict": True,
            "parameters": arc_parameters()}


def render_arc_result(result: dict[str, Any]) -> str:
    """Each test input's attempts as digit rows with their votes, then a one-line verdict."""
    lines = []
    for j, answer in enumerate(result["test"], start=1):
        if not answer["attempts"]:
            lines.append(f"test input {j}: no version produced a grid")
        for k, attempt in enumerate(answer["attempts"], start=1):
            lines.append(f"test input {j}, attempt {k} ({attempt['votes']} of "
                         f"{answer['predictions']} votes):")
            lines += [" ".join(str(v) for v in row) for row in attempt["grid"]]
    how = {"known": "a task the model was trained on",
           "adapted": "a new task, learnt from its demonstrations",
           "augmented": "voting over symmetric views"}[result["mode"]]
    lines.append(f"{result['status']}: {how}; {result['versions']} versions voted; ARC answers "
                 "cannot be verified without the expected output")
    return "\n".join(lines)

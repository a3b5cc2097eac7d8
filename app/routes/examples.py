"""`GET /v1/examples/{task}`: the task's example puzzles (`Task.examples`: Sudoku's bundled ones,
the first mazes of the committed test sets), and `GET /v1/examples/{task}/generate`: one fresh
puzzle of a difficulty with its solution. The list route also generates when given a
`difficulty` (the older spelling). Generation runs in the app's `ExampleGenerator` (other
processes, a bounded number at once)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app import errors
from app.examples import (
    Difficulty,
    ExampleGenerator,
    example_tasks,
    examples,
    generates,
    offers_examples,
)
from app.schemas import PROBLEM_RESPONSES

router = APIRouter(tags=["examples"])
Seed = Annotated[int | None, Query(ge=0, description="makes generation repeatable")]


def _check(task: str) -> None:
    if not offers_examples(task):
        known = example_tasks()
        raise errors.not_found("task", f"no examples for task {task!r}; try "
                               f"{' or '.join(known)}", known=known)


def _generator(request: Request) -> ExampleGenerator:
    generator: ExampleGenerator = request.app.state.examples
    return generator


@router.get("/v1/examples/{task}", responses=PROBLEM_RESPONSES)
async def list_examples(
    task: str,
    request: Request,
    difficulty: Annotated[Difficulty | None,
                          Query(description="generate a new puzzle of this difficulty")] = None,
    seed: Seed = None,
) -> dict[str, Any]:
    """Examples to try; with `difficulty`, one new unique puzzle and its solution."""
    _check(task)
    if difficulty is None:
        return {"object": "list", "task": task, "data": examples(task)}
    return await generate(task, request, difficulty, seed)


@router.get("/v1/examples/{task}/generate", responses=PROBLEM_RESPONSES)
async def generate(
    task: str,
    request: Request,
    difficulty: Annotated[Difficulty, Query(description="Sudoku: by search effort; maze: "
                                                        "easy 20-60, medium 61-110, hard 111+ "
                                                        "path steps")] = "medium",
    seed: Seed = None,
) -> dict[str, Any]:
    """A new puzzle with a unique solution (Sudoku) or a unique shortest path (maze), made
    on request within a bounded number of tries; 503 + Retry-After when none was found in
    time or too many generations are under way; 404 for a task with no generator."""
    _check(task)
    if not generates(task):
        known = [name for name in example_tasks() if generates(name)]
        raise errors.not_found("task", f"task {task!r} has examples but no generator; list "
                               f"them with GET /v1/examples/{task}, or generate for "
                               f"{' or '.join(known)}", known=known)
    try:
        return {"object": "example", "task": task,
                **await _generator(request).generate(task, difficulty, seed)}
    except RuntimeError as exc:
        raise errors.unavailable("generation_failed", str(exc), 1) from None

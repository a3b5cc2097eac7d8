"""`GET /v1/examples/{task}`: bundled example puzzles, or a freshly generated one when a
`difficulty` is given (Sudoku only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app import errors
from app.examples import SUDOKU_EXAMPLES, Difficulty, generate_sudoku
from app.schemas import PROBLEM_RESPONSES

router = APIRouter(tags=["examples"])


@router.get("/v1/examples/{task}", responses=PROBLEM_RESPONSES)
async def examples(
    task: str,
    difficulty: Annotated[Difficulty | None,
                          Query(description="generate a new puzzle of this difficulty")] = None,
    seed: Annotated[int | None, Query(ge=0, description="makes generation repeatable")] = None,
) -> dict[str, Any]:
    """Examples to try; with `difficulty`, one new unique puzzle and its solution."""
    if task != "sudoku":
        raise errors.not_found("task", f"no examples for task {task!r}; try sudoku")
    if difficulty is None:
        return {"object": "list", "task": task, "data": SUDOKU_EXAMPLES}
    try:
        return {"object": "example", "task": task, **await generate_sudoku(difficulty, seed)}
    except RuntimeError as exc:
        raise errors.unavailable("generation_failed", str(exc), 1) from None

"""Task registry: one module per puzzle family, looked up by name."""

from trm_core.tasks.arc.grids import ArcTask
from trm_core.tasks.base import PuzzleError, Symmetry, Task
from trm_core.tasks.maze import MazeTask
from trm_core.tasks.sudoku import SudokuTask

TASKS: dict[str, Task] = {task.name: task for task in (SudokuTask(), MazeTask(), ArcTask())}


def get_task(name: str) -> Task:
    """The registered task called `name`; raises KeyError naming the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


__all__ = ["TASKS", "PuzzleError", "Symmetry", "Task", "get_task"]

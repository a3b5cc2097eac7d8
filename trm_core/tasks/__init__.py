"""Task registry: one package (or module) per puzzle family, registered by one line below and
looked up by name everywhere else. `register` also takes a task at runtime (a test's toy task,
a plugin): the model, engine, trainer, CLI and service serve whatever is registered."""

from trm_core.tasks.arc import ArcTask
from trm_core.tasks.base import PuzzleError, Symmetry, Task
from trm_core.tasks.maze import MazeTask
from trm_core.tasks.sudoku import SudokuTask

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add `task` under `task.name`; ValueError when another task holds the name."""
    held = TASKS.get(task.name)
    if held is not None and held is not task:
        raise ValueError(f"task name {task.name!r} is already registered ({type(held).__name__})")
    TASKS[task.name] = task
    return task


def unregister(name: str) -> None:
    """Remove the task called `name` (a runtime registration's undo); absent names are fine."""
    TASKS.pop(name, None)


def get_task(name: str) -> Task:
    """The registered task called `name`; raises KeyError naming the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


register(SudokuTask())
register(MazeTask())
register(ArcTask())

__all__ = ["TASKS", "PuzzleError", "Symmetry", "Task", "get_task", "register", "unregister"]

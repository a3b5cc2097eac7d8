"""Task registry: one package (or module) per puzzle family, registered by one line below and
looked up by name everywhere else. `register` also takes a task at runtime (a test's toy task,
a plugin): the model, engine, trainer, CLI and service serve whatever is registered."""

from typing import Any

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


def task_of_card(card: dict[str, Any]) -> Task:
    """The task a checkpoint card names. A card that carries a data-defined task's spec
    registers that task (once; ValueError when another task holds its name)."""
    raw = card.get("task_spec")
    if raw is None:
        return get_task(str(card["task"]))
    from trm_core.tasks.defined import DataTask, spec_from_dict

    return adopt(DataTask(spec_from_dict(raw, where=f"the card of {card.get('name')!r}")))


def adopt(task: Task) -> Task:
    """Register a data-defined task unless the same one is registered already; the registered
    one is returned, taking the newer spec's examples when it has some (`trm data` then
    `trm train` in one process: the split writes the held-out examples in between)."""
    from trm_core.tasks.defined import DataTask

    held = TASKS.get(task.name)
    if isinstance(held, DataTask) and isinstance(task, DataTask) and held.spec == task.spec:
        if task.spec.examples:
            held.spec = task.spec
        return held
    return register(task)


register(SudokuTask())
register(MazeTask())
register(ArcTask())

__all__ = ["TASKS", "PuzzleError", "Symmetry", "Task", "adopt", "get_task", "register",
           "task_of_card", "unregister"]

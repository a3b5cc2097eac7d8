"""Generic code names no task: the model, engine, solve loop, trainer, evaluation, CLI, dataset
builder and service ask the task object (`trm_core.tasks.base.Task` hooks) or a registry.

The rule, precisely. A module is *generic* unless
- its file is named for a task (the file name holds a registered task's name as a word:
  app/arc_*.py, app/routes/arc.py, training/arc_commands.py: a task's own route or commands), or
- it is a registration module, whose job is to map task names to task-owned code:
  trm_core/tasks/__init__.py (outside the scanned folders anyway), app/task_apis.py (a task's
  own routes and agent tools), app/task_jobs.py (a task's own job kind), app/task_models.py (a
  task's settings group and result body), training/task_commands.py (a task's own
  subcommands).
In a generic module no *identifier* holds a registered task's name as a word, where words are
split at underscores, dots and camel case (`arc_tool`, `ArcSplit`, `trm_core.tasks.sudoku` and
`MAZE_DATA` count; `search` does not); identifiers are names, attributes, function, class and
argument names, import aliases and imported module paths. And no *string literal* is exactly a
task's name (the literal a switch compares with: `task == "arc"`, `{"sudoku": ...}`, a default
`task_name="sudoku"`). Docstrings, comments and prose inside longer strings may name tasks as
examples: they explain, they do not decide.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from trm_core.tasks import TASKS

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ["app/*.py", "app/routes/*.py", "app/runners/*.py", "trm_core/*.py", "training/*.py"]
REGISTRATIONS = {"app/task_apis.py", "app/task_jobs.py", "app/task_models.py",
                 "training/task_commands.py"}


def words(text: str) -> list[str]:
    """`text` split at non-word characters, underscores and camel case, lower-cased."""
    found = []
    for part in re.split(r"[^A-Za-z0-9]+", text):
        found += [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", part)]
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, kinds) and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}


def _identifier(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.arg):
        return node.arg
    if isinstance(node, ast.alias):
        return f"{node.name} {node.asname or ''}"
    if isinstance(node, ast.ImportFrom):
        return node.module or ""
    return None


def task_names_in(path: Path, names: set[str]) -> list[str]:
    """Every identifier holding a task name as a word and every literal equal to one."""
    tree = ast.parse(path.read_text())
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        identifier = _identifier(node)
        if identifier is not None and names & set(words(identifier)):
            found.append(f"{node.lineno if hasattr(node, 'lineno') else '?'}: {identifier}")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings and node.value.strip().lower() in names):
            found.append(f"{node.lineno}: {node.value!r}")
    return found


def generic_modules(names: set[str]) -> list[Path]:
    paths = sorted(p for pattern in SCANNED for p in ROOT.glob(pattern))
    return [p for p in paths if not names & set(words(p.stem))
            and str(p.relative_to(ROOT)) not in REGISTRATIONS]


def test_generic_modules_name_no_task() -> None:
    names = set(TASKS)
    offenders = {str(p.relative_to(ROOT)): task_names_in(p, names)
                 for p in generic_modules(names)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_rule_catches_switches_and_spares_prose(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""Sudoku, mazes and arc as examples."""\nfrom x import arc_tool\n'
                      'def pick(task):\n    """For sudoku."""\n    research = 1\n'
                      '    return task == "maze" or "the maze puzzle" or ArcSplit\n')
    found = sorted(task_names_in(sample, {"sudoku", "maze", "arc"}))
    assert found == ["2: arc_tool ", "6: 'maze'", "6: ArcSplit"]

"""Your own task, no code: `trm task init`, and what `trm data` and `trm train` do when given a
task folder (a folder holding task.toml) instead of a built-in task or a run config.

    trm task init life --data life.jsonl   # life/task.toml, its shapes and alphabet read off
    trm data life                          # life/train.csv, val.csv, test.csv, examples.json
    trm train life                         # life/run.toml (CPU-sized), then life/checkpoint/
    trm eval life/checkpoint/trm-life --data life/test.csv
    TRM_CHECKPOINT_DIR=life/checkpoint trm serve
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training import life_example
from trm_core.tasks import adopt
from trm_core.tasks.defined import DataTask, SpecError, load_spec
from trm_core.tasks.defined.dataset import default_run, read_examples, run_toml, write_splits
from trm_core.tasks.defined.spec import MAX_SIDE

RUN_HEADER = """A run config for a data-defined task, sized for a 2-core CPU: `trm train {folder}`
wrote it and reads it on every later call, so edit it to change the run. Any field also takes
--set section.field=value."""


def is_task_folder(path: str | Path) -> bool:
    """True for a task.toml, or a folder holding one."""
    path = Path(path)
    return (path / "task.toml").is_file() or (path.suffix == ".toml" and path.is_file()
                                              and path.name == "task.toml")


def folder_of(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


def open_task(path: str | Path) -> DataTask:
    """The folder's task, registered (or the same one already registered)."""
    task = adopt(DataTask(load_spec(path)))
    assert isinstance(task, DataTask)
    return task


# ------------------------------------------------------------------------------- trm task init
def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("task", help="your own task from data: `trm task init NAME`")
    actions = p.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="write NAME/task.toml, read off your data when given")
    init.add_argument("name", help="the task's name (also its folder and its route)")
    init.add_argument("--data", type=Path,
                      help="your examples, JSONL {\"input\", \"output\"} or CSV input,output")
    init.add_argument("--dir", type=Path, default=None, help="the folder (default: NAME)")
    init.set_defaults(func=run_init)
    example = actions.add_parser("example", help="write a worked example's folder: its spec "
                                                 "and generated data")
    example.add_argument("name", choices=sorted(WORKED_EXAMPLES),
                         help="life: one step of Conway's Game of Life on a 10x10 torus")
    example.add_argument("--dir", type=Path, default=None, help="the folder (default: NAME)")
    example.add_argument("--count", type=int, default=4000, help="examples to generate")
    example.add_argument("--seed", type=int, default=0)
    example.set_defaults(func=run_example)


def run_init(args: argparse.Namespace) -> dict[str, Any]:
    folder = args.dir or Path(args.name)
    spec_file = folder / "task.toml"
    if spec_file.exists():
        raise ValueError(f"{spec_file} exists; edit it, or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        data = folder / "data.jsonl"
        data.write_text(SAMPLE_DATA)
        guessed = guess_spec(args.name, [json.loads(line) for line in SAMPLE_DATA.splitlines()])
        data_name = data.name
    else:
        rows = _sample_rows(args.data)
        guessed = guess_spec(args.name, rows)
        data_name = str(Path(args.data).resolve())
    spec_file.write_text(spec_text(guessed, data_name))
    load_spec(spec_file)  # what was written reads back
    return {"spec": str(spec_file), "data": data_name,
            "next": f"check {spec_file}, then: trm data {folder} && trm train {folder}"}


SAMPLE_DATA = "\n".join(json.dumps(row) for row in (
    {"input": ["#..", "...", "..."], "output": [".#.", "...", "..."]},
    {"input": ["...", ".#.", "..."], "output": ["...", "..#", "..."]},
    {"input": ["..#", "...", "..."], "output": ["#..", "...", "..."]},
)) + "\n"


def _sample_rows(path: Path, limit: int = 2000) -> list[dict[str, Any]]:
    """Up to `limit` rows of a JSONL or CSV file, as read (nothing checked yet)."""
    import csv

    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        with path.open() as handle:
            return [json.loads(line) for _, line in zip(range(limit), handle, strict=False)
                    if line.strip()]
    with path.open(newline="") as handle:
        return [row for _, row in zip(range(limit), csv.DictReader(handle), strict=False)]


def _cells(value: Any) -> tuple[str, list[list[Any]]]:
    """A raw value's kind and rows of symbols, as `DataTask` would read it."""
    if isinstance(value, list) and value and all(isinstance(r, list) for r in value):
        return "grid", value
    if isinstance(value, list) and len(value) > 1 and all(isinstance(r, str) for r in value):
        return "grid", [list(r) for r in value]  # rows of single-character symbols
    if isinstance(value, list):
        return "sequence", [value]
    text = str(value).strip()
    lines = text.splitlines()
    if len(lines) > 1:
        return "grid", [line.split() if " " in line.strip() else list(line.strip())
                        for line in lines]
    return "text", [text.split() if " " in text else list(text)]


def guess_spec(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Input and output kinds, shapes and the alphabet, read off sample rows."""
    if not rows or not all(isinstance(r, dict) and {"input", "output"} <= set(r) for r in rows):
        raise ValueError("every sample row needs an input and an output")
    alphabet: dict[Any, None] = {}
    sides: dict[str, dict[str, Any]] = {}
    labels: dict[Any, None] = {}
    outputs = [r["output"] for r in rows]
    as_label = all(not isinstance(o, list) and "\n" not in str(o) for o in outputs) and (
        len({str(o) for o in outputs}) <= max(2, len(outputs) // 4))
    for side in ("input", "output"):
        kinds, shapes = set(), set()
        for row in rows:
            if side == "output" and as_label:
                labels[row[side]] = None
                continue
            kind, cells = _cells(row[side])
            kinds.add("sequence" if kind == "text" else kind)
            shapes.add((len(cells), max(len(r) for r in cells)))
            for r in cells:
                alphabet.update(dict.fromkeys(r))
        if side == "output" and as_label:
            sides[side] = {"kind": "label"}
            continue
        kind = "grid" if kinds == {"grid"} else "sequence"
        if kind == "grid":
            rows_n = max(s[0] for s in shapes)
            cols_n = max(s[1] for s in shapes)
            if len(shapes) > 1 or rows_n > MAX_SIDE or cols_n > MAX_SIDE:
                raise ValueError(f"{side}: grids must all have one shape up to {MAX_SIDE}x"
                                 f"{MAX_SIDE}; found {sorted(shapes)[:4]}")
            sides[side] = {"kind": "grid", "shape": [rows_n, cols_n]}
        else:
            sides[side] = {"kind": "sequence", "shape": [max(s[1] for s in shapes)]}
    return {"name": name, "alphabet": sorted(alphabet, key=str), "labels": list(labels),
            "input": sides["input"], "output": sides["output"]}


def spec_text(guess: dict[str, Any], data: str) -> str:
    """A commented task.toml from a guess."""
    def value(v: Any) -> str:
        return json.dumps(v)

    inp, out = guess["input"], guess["output"]
    lines = [
        f"# The task {guess['name']!r}: what your examples hold, for `trm data`, `trm train`",
        "# and the service. Read off your data by `trm task init`; check every line.",
        f"name = {value(guess['name'])}",
        'description = ""          # one line for the tool listing and the viewer',
        f"data = {value(data)}",
        "",
        "# Every symbol an input or output cell may hold: strings or integers.",
        f"alphabet = {value(guess['alphabet'])}",
    ]
    if out["kind"] == "label":
        lines += ["# The labels an answer picks one of.", f"labels = {value(guess['labels'])}"]
    lines += [
        "# Input symbols an answer must keep in place, like a Sudoku's givens (same shapes).",
        "keep = []",
        "# Transforms that map a right example to a right example, used to augment training",
        "# and to keep held-out inputs apart from trained ones: \"dihedral\" (the 8 rotations",
        "# and reflections of a grid), \"reverse\" (a sequence read backwards), \"permute\"",
        "# (relabelling the symbols; list the ones that keep their meaning under `fixed`).",
        "symmetries = []",
        "fixed = []",
        "",
        "[input]",
        f"kind = {value(inp['kind'])}          # \"grid\" or \"sequence\"",
        f"shape = {value(inp['shape'])}        # grid: [rows, columns]; sequence: [longest]",
    ]
    if inp["kind"] == "grid":
        lines.append("wrap = false           # true when the grid's edges meet (a torus)")
    lines += ["", "[output]",
              f"kind = {value(out['kind'])}          # \"grid\", \"sequence\" or \"label\""]
    if out["kind"] != "label":
        lines.append(f"shape = {value(out['shape'])}")
    lines += ["", "# A rules check, when the output is a grid of the input's shape and every row,",
              "# column or box must hold each of some symbols once: answers then verify, and the",
              "# service may search. Without one, every answer is unverified.",
              "# [check]", '# units = ["rows", "columns", "boxes"]', "# box = [2, 2]",
              '# values = ["1", "2", "3", "4"]']
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ worked examples
WORKED_EXAMPLES = {"life": (life_example.SPEC, life_example.rows)}


def run_example(args: argparse.Namespace) -> dict[str, Any]:
    folder = args.dir or Path(args.name)
    spec_text_, make_rows = WORKED_EXAMPLES[args.name]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.toml").write_text(spec_text_)
    rows = make_rows(args.count, args.seed)
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    load_spec(folder)
    return {"spec": str(folder / "task.toml"), "data": str(folder / "data.jsonl"),
            "examples": len(rows), "next": f"trm data {folder} && trm train {folder}"}


# ---------------------------------------------------------------------------------- trm data
def import_data(folder: Path, held_out: float, seed: int) -> dict[str, Any]:
    """Read the folder's data and write its splits beside task.toml."""
    task = open_task(folder)
    if not task.spec.data:
        raise SpecError(f"{folder_of(folder) / 'task.toml'}: name your examples with data = ...")
    data = folder_of(folder) / task.spec.data
    examples = read_examples(data, task)
    report = write_splits(task, examples, folder_of(folder), val=held_out, test=held_out,
                          seed=seed)
    return {**report, "data": str(data)}


# --------------------------------------------------------------------------------- trm train
def run_config(folder: Path) -> Path:
    """The folder's run.toml, written from the data's size on first use."""
    folder = folder_of(folder)
    path = folder / "run.toml"
    if path.exists():
        return path
    task = open_task(folder)
    train = folder / "train.csv"
    if not train.exists():
        raise FileNotFoundError(f"no {train}: run `trm data {folder}` first")
    with train.open() as handle:
        rows = sum(1 for _ in handle) - 1
    run = default_run(task.spec, folder, rows)
    path.write_text(run_toml(run, RUN_HEADER.format(folder=folder)))
    return path


def checkpoint_stem(folder: Path) -> Path:
    """Where `trm train FOLDER` ships the best checkpoint (`TRM_CHECKPOINT_DIR` its parent)."""
    folder = folder_of(folder)
    return folder / "checkpoint" / f"trm-{load_spec(folder).name}"

"""A data-defined task's examples: read (JSONL or CSV, every bad row named by its line), split
into train, val and test disjoint under the declared symmetries, written as the puzzle CSVs the
trainer and `trm eval` read; and the CPU-sized run config a data set of that size gets.

Data rows: JSONL lines {"input": ..., "output": ...}, or a CSV with `input` and `output`
columns; values as `DataTask.parse` reads them (text or lists)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_core.tasks.base import PuzzleError
from trm_core.tasks.defined.spec import TaskSpec
from trm_core.tasks.defined.task import DataTask

MAX_REPORTED = 10  # bad rows listed in one error
EXAMPLES = 3  # held-out rows a checkpoint carries for the viewer and /v1/examples


class DataError(ValueError):
    """Rows that cannot be read; the message lists them by line."""


@dataclass
class Examples:
    """Parsed rows: inputs and outputs as cells (N, seq_len), with their source lines."""

    inputs: np.ndarray
    outputs: np.ndarray
    lines: np.ndarray


def read_examples(path: str | Path, task: DataTask) -> Examples:
    """Every row of a JSONL or CSV file; DataError listing the first bad rows by line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no data file at {path}")
    rows = _jsonl_rows(path) if path.suffix in (".jsonl", ".json", ".ndjson") else _csv_rows(path)
    inputs, outputs, lines, problems = [], [], [], []
    for line, row in rows:
        if isinstance(row, str):
            problems.append(f"line {line}: {row}")
            continue
        try:
            inputs.append(task.parse(row["input"]))
        except PuzzleError as err:
            problems.append(f"line {line}: input: {err}")
            continue
        try:
            outputs.append(task.parse_solution(row["output"]))
        except PuzzleError as err:
            inputs.pop()
            problems.append(f"line {line}: output: {err}")
            continue
        lines.append(line)
    if problems:
        more = len(problems) - MAX_REPORTED
        raise DataError(f"{path}: {len(problems)} bad row(s):\n  " + "\n  ".join(
            problems[:MAX_REPORTED]) + (f"\n  ... and {more} more" if more > 0 else ""))
    if not inputs:
        raise DataError(f"{path}: no examples")
    return Examples(np.stack(inputs), np.stack(outputs), np.array(lines))


def _jsonl_rows(path: Path) -> list[tuple[int, dict[str, Any] | str]]:
    rows: list[tuple[int, dict[str, Any] | str]] = []
    with path.open() as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                rows.append((line, f"not JSON ({err.msg})"))
                continue
            if not isinstance(row, dict) or not {"input", "output"} <= set(row):
                rows.append((line, 'expected an object with "input" and "output"'))
                continue
            rows.append((line, row))
    return rows


def _csv_rows(path: Path) -> list[tuple[int, dict[str, Any] | str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"input", "output"} <= set(reader.fieldnames or []):
            raise DataError(f"{path}: the header must name the columns input and output, got "
                            f"{','.join(reader.fieldnames or [])!r}")
        return [(line, {"input": row["input"], "output": row["output"]})
                for line, row in enumerate(reader, start=2)]


def split(task: DataTask, examples: Examples, val: float, test: float, seed: int
          ) -> dict[str, np.ndarray]:
    """Row indexes of train, val and test: whole symmetry classes of inputs go to one split
    (so no held-out input is a rotation, reflection or relabelling of a trained one), classes
    drawn at random by `seed`, val and test each about their share of the rows."""
    classes: dict[bytes, list[int]] = {}
    for row, cells in enumerate(examples.inputs):
        classes.setdefault(task.canonical_form(cells)[0], []).append(row)
    keys = sorted(classes)
    order = np.random.default_rng(seed).permutation(len(keys))
    total = len(examples.inputs)
    wanted = {"test": round(test * total), "val": round(val * total)}
    chosen: dict[str, list[int]] = {"test": [], "val": [], "train": []}
    for index in order:
        rows = classes[keys[index]]
        name = next((n for n in ("test", "val") if len(chosen[n]) < wanted[n]), "train")
        chosen[name] += rows
    return {name: np.array(sorted(rows), dtype=np.int64) for name, rows in chosen.items()}


def write_splits(task: DataTask, examples: Examples, out: Path, val: float = 0.1,
                 test: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """train.csv, val.csv and test.csv (columns puzzle, solution, line) and examples.json in
    `out`; returns the report (also written as split.json)."""
    out.mkdir(parents=True, exist_ok=True)
    parts = split(task, examples, val, test, seed)
    for name, rows in parts.items():
        with (out / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["puzzle", "solution", "line"])
            for row in rows:
                writer.writerow([task.format_puzzle(examples.inputs[row]),
                                 task.format(examples.outputs[row]), int(examples.lines[row])])
    held = parts["test"] if len(parts["test"]) else parts["val"]
    shown = [{"name": f"line {int(examples.lines[row])}",
              "puzzle": task.format_puzzle(examples.inputs[row]),
              "solution": task.format(examples.outputs[row])} for row in held[:EXAMPLES]]
    (out / "examples.json").write_text(json.dumps(shown, indent=2) + "\n")
    report = {"task": task.name, "rows": len(examples.inputs),
              "splits": {name: len(rows) for name, rows in parts.items()},
              "disjoint_under": list(task.spec.symmetries) or ["identity"], "seed": seed,
              "files": {name: str(out / f"{name}.csv") for name in parts}}
    (out / "split.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def default_run(spec: TaskSpec, folder: Path, train_rows: int) -> dict[str, Any]:
    """A run config (TOML tables as dicts) sized for a 2-core CPU in a few minutes.

    Grid to a grid of the same shape: the convolutional mixer (local rules; wrapping edges
    when the grid wraps), recursion enough to carry a rule across the grid. Anything else:
    attention with learned positions, which can read any cell from any other."""
    same_grid = (spec.input.kind == spec.output.kind == "grid"
                 and spec.input.cells == spec.output.cells
                 and spec.input.rows == spec.output.rows)
    model: dict[str, Any] = {
        "seq_len": spec.seq_len, "vocab_size": len(spec.symbols) + 2, "hidden_size": 64,
        "num_heads": 4, "expansion": 2.0, "swiglu_multiple": 32, "recursions": 2,
        "latent_updates": 2, "max_supervision_steps": 8,
    }
    if same_grid:
        model.update({"token_mixer": "conv", "conv_kernel": 3, "grid_height": spec.input.rows,
                      "conv_padding": "circular" if spec.input.wrap else "zeros"})
    else:
        model.update({"token_mixer": "attention", "position_encoding": "learned"})
    batch = 64
    steps = int(min(4000, max(400, 20 * train_rows // batch)))
    train = {
        "task": spec.name, "task_spec": str(folder / "task.toml"),
        "train_data": str(folder / "train.csv"), "eval_data": str(folder / "val.csv"),
        "out_dir": str(folder / "run"), "name": f"trm-{spec.name}",
        "batch_size": batch, "total_steps": steps, "lr": 2e-3, "lr_min_ratio": 0.05,
        "warmup_steps": min(200, steps // 10), "weight_decay": 0.1, "ema_rate": 0.99,
        "eval_every": max(100, steps // 8), "eval_puzzles": 500, "eval_batch_size": 250,
        "threads": 0, "autocast": "native", "compile": "off", "time_limit_s": 480.0,
    }
    return {"model": model, "train": train}


def run_toml(run: dict[str, Any], header: str) -> str:
    """A run config as commented TOML."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for table, fields in run.items():
        lines += ["", f"[{table}]"]
        lines += [f"{key} = {_toml(value)}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)

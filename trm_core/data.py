"""Puzzle sets on disk (CSV: puzzle,solution[,bucket] or question,answer), the training
sampler that draws rows, turns them into tokens and augments them on the fly, and the two
interfaces the trainer takes data through: `TrainingData` (what a data set offers: its run
settings, a sampler, evaluation, files saved with a checkpoint) and `TrainingSampler`. A task
opens its data with `Task.open_training_data`; CSV sets are the default, a task with data of
its own kind implements both interfaces (ARC: `trm_core.tasks.arc.train_data`).
"""

from __future__ import annotations

import copy
import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from trm_core.evaluate import evaluate
from trm_core.inference import prepare_for_inference
from trm_core.model import TRM
from trm_core.tasks.base import Task
from trm_core.train_config import RunConfig


@dataclass
class PuzzleSet:
    """Puzzles and their solutions in the task's cell space, (N, seq_len) int8 each."""

    puzzles: np.ndarray
    solutions: np.ndarray
    buckets: np.ndarray  # (N,) str; "all" when the file has no bucket column
    provenance: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.puzzles)

    def fit_run(self, run: RunConfig) -> RunConfig:
        """A CSV set decides nothing about the model: `run` as it is."""
        return run

    def check_run(self, run: RunConfig) -> None:
        """Nothing beyond the task's sizes, which the trainer checks."""

    def sampler(self, task: Task, seed: int, augment: bool) -> TrainingSampler:
        return Sampler(self, task, seed, augment)

    def evaluate(self, model: TRM, task: Task, limit: int, batch_size: int) -> dict[str, Any]:
        """The first `limit` puzzles (0: all) at full depth, on a copy of `model` at the
        precision the service would run it at (trm_core/inference.py), so the best checkpoint
        is chosen by the arithmetic it will be served with."""
        device = next(model.parameters()).device
        served, precision = prepare_for_inference(copy.deepcopy(model), device)
        report = evaluate(served, task, self.head(limit), halting="never",
                          batch_size=batch_size, autocast_dtype=precision.autocast)
        report["settings"]["precision"] = precision.name
        return report

    def save_sidecars(self, stem: Path) -> None:
        """A CSV-trained checkpoint needs no file beside its weights and card."""

    def head(self, count: int) -> PuzzleSet:
        """The first `count` rows (all when count is 0 or larger than the set)."""
        if count <= 0 or count >= len(self):
            return self
        return PuzzleSet(self.puzzles[:count], self.solutions[:count], self.buckets[:count],
                         {**self.provenance, "rows_used": count})


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Column pairs (puzzle, solution) a CSV may use: ours, and the official builders' source files
# (Sudoku-Extreme and Maze-Hard ship `source,question,answer,rating`).
CSV_LAYOUTS = (("puzzle", "solution"), ("question", "answer"))
# "auto", "column" (the `bucket` column), "derived", or the name of any other column.
BucketBy = str


def load_puzzle_csv(path: str | Path, task: Task, bucket_by: BucketBy = "auto") -> PuzzleSet:
    """Read a puzzle CSV whose header names its layout: `puzzle,solution` (optionally
    `guesses`, `bucket`, `path_length`) or `question,answer` (optionally `source`, `rating`).

    Buckets come from the file's `bucket` column ("column"), from the task's reading of each
    solution ("derived": maze path length, else "all"), the column when there is one and the
    task's reading otherwise ("auto"), or any other column named (e.g. "givens")."""
    path = Path(path)
    puzzles, solutions, buckets = [], [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        puzzle_key, solution_key = _layout(path, reader.fieldnames)
        column = _bucket_column(path, reader.fieldnames, bucket_by)
        for line, row in enumerate(reader, start=2):
            try:
                puzzles.append(task.parse(row[puzzle_key]))
                solutions.append(task.parse_solution(row[solution_key]))
            except ValueError as err:
                raise ValueError(f"{path}:{line}: {err}") from None
            buckets.append((row[column] or "all") if column
                           else task.bucket_of(solutions[-1]))
    if not puzzles:
        raise ValueError(f"{path}: no puzzles after the header")
    provenance = {"path": str(path), "sha256": file_digest(path), "rows": len(puzzles)}
    return PuzzleSet(np.stack(puzzles), np.stack(solutions), np.array(buckets), provenance)


def _layout(path: Path, fieldnames: Sequence[str] | None) -> tuple[str, str]:
    """The (puzzle, solution) column names of a header; ValueError naming what was found."""
    names = set(fieldnames or [])
    for layout in CSV_LAYOUTS:
        if set(layout) <= names:
            return layout
    found = ",".join(fieldnames or [])
    found = found if len(found) <= 60 else found[:60] + "..."
    raise ValueError(f"{path}: unrecognised header {found!r}; expected columns puzzle,solution"
                     f"[,bucket] or question,answer (as in source,question,answer,rating)")


def _bucket_column(path: Path, fieldnames: Sequence[str] | None, bucket_by: BucketBy
                   ) -> str | None:
    """The column that names each row's bucket, or None for the task's own reading."""
    names = list(fieldnames or [])
    if bucket_by == "derived":
        return None
    if bucket_by == "auto":
        return "bucket" if "bucket" in names else None
    column = "bucket" if bucket_by == "column" else bucket_by
    if column not in names:
        raise ValueError(f"{path}: no {column} column to group by (its columns: "
                         f"{', '.join(names)}; or auto, derived)")
    return column


class TrainingData(Protocol):
    """What the trainer takes as training and evaluation data, whatever its kind."""

    @property
    def provenance(self) -> dict[str, Any]:
        """Where the data came from, for the checkpoint card."""
        ...

    def fit_run(self, run: RunConfig) -> RunConfig:
        """`run` with the model settings the data decides filled in (ARC: the puzzle-embedding
        rows); ValueError naming the setting when `run` already disagrees."""
        ...

    def check_run(self, run: RunConfig) -> None:
        """ValueError when the model `run` builds cannot take this data."""
        ...

    def sampler(self, task: Task, seed: int, augment: bool) -> TrainingSampler:
        """A sampler drawing training rows from the data."""
        ...

    def evaluate(self, model: TRM, task: Task, limit: int, batch_size: int) -> dict[str, Any]:
        """The data's evaluation of `model` (up to `limit` puzzles or examples, 0: all), in
        `trm_core.evaluate.evaluate`'s report shape."""
        ...

    def save_sidecars(self, stem: Path) -> None:
        """Write the files a checkpoint trained on this data needs beside `stem`."""
        ...


class TrainingSampler(Protocol):
    """What the trainer draws training rows from. `epochs` counts completed passes over the
    data and is saved with resume state."""

    epochs: int

    def draw(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`count` rows: inputs and labels (count, seq_len) int64 tokens, and puzzle ids
        (count,) int64, the puzzle-embedding row of each."""
        ...


class Sampler:
    """Draws training examples: each pass over the set is a fresh permutation (an epoch samples
    every base puzzle once), and every drawn row gets its own random symmetry."""

    def __init__(self, data: PuzzleSet, task: Task, seed: int, augment: bool = True) -> None:
        self.task = task
        self.inputs = task.to_tokens(data.puzzles)  # (N, seq_len) int64
        self.labels = task.to_tokens(data.solutions)
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.inputs))
        self.cursor = 0
        self.epochs = 0

    def draw(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`count` (inputs, labels) token rows, (count, seq_len) each, and their puzzle ids:
        all 0, since CSV tasks (Sudoku, mazes) share one puzzle-embedding row."""
        picked = []
        while count > 0:
            if self.cursor == len(self.order):
                self.order = self.rng.permutation(len(self.inputs))
                self.cursor, self.epochs = 0, self.epochs + 1
            take = min(count, len(self.order) - self.cursor)
            picked.append(self.order[self.cursor:self.cursor + take])
            self.cursor += take
            count -= take
        rows = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
        inputs, labels = self.inputs[rows], self.labels[rows]
        if self.augment and len(rows):
            inputs, labels = self.task.augment_tokens(inputs, labels, self.rng)
        return inputs, labels, np.zeros(len(rows), dtype=np.int64)

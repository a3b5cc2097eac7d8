"""Puzzle sets on disk (CSV: puzzle,solution[,guesses,bucket]) and the training sampler that
draws rows, turns them into tokens and augments them on the fly.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trm_core.tasks.base import Task


@dataclass
class PuzzleSet:
    """Puzzles and their solutions in the task's cell space, (N, seq_len) int8 each."""

    puzzles: np.ndarray
    solutions: np.ndarray
    buckets: np.ndarray  # (N,) str; "all" when the file has no bucket column
    provenance: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.puzzles)

    def head(self, count: int) -> PuzzleSet:
        """The first `count` rows (all when count is 0 or larger than the set)."""
        if count <= 0 or count >= len(self):
            return self
        return PuzzleSet(self.puzzles[:count], self.solutions[:count], self.buckets[:count],
                         {**self.provenance, "rows_used": count})


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_puzzle_csv(path: str | Path, task: Task) -> PuzzleSet:
    """Read a CSV with header `puzzle,solution` (optionally `guesses`, `bucket`)."""
    path = Path(path)
    puzzles, solutions, buckets = [], [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"puzzle", "solution"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                puzzles.append(task.parse(row["puzzle"]))
                solutions.append(task.parse(row["solution"]))
            except ValueError as err:
                raise ValueError(f"{path}:{line}: {err}") from None
            buckets.append(row.get("bucket") or "all")
    provenance = {"path": str(path), "sha256": file_digest(path), "rows": len(puzzles)}
    return PuzzleSet(np.stack(puzzles), np.stack(solutions), np.array(buckets), provenance)


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

    def draw(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """`count` (inputs, labels) token rows, (count, seq_len) each."""
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
        return inputs, labels

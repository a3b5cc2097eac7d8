"""What every task's data tools share: `DatasetTools`, the bundle a task hands the dataset
builder (`Task.dataset_tools`), a process-pool map, seeded generation on all cores (item i
of a run is made from (seed, i) alone, so the result depends only on (n, difficulty, seed),
never on how many worker processes made it), and the CSV rows of puzzle files."""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
Item = TypeVar("Item")
Row = TypeVar("Row")
Job = tuple[int, int, str]  # (seed, index, difficulty)


@dataclass(frozen=True)
class DatasetTools:
    """A task's dataset tools: its seeded generator (n, difficulty, seed, workers) -> rows
    whose first field is the puzzle, CSV writing and reading (records with a `puzzle`
    field), and the symmetries its splits are kept disjoint under, in words."""

    generate: Callable[[int, str, int, int | None], Sequence[Sequence[Any]]]
    write_csv: Callable[[Path, Iterable[Sequence[Any]]], int]
    read_csv: Callable[[Path], Sequence[Any]]
    disjoint_under: str


def parallel_map(function: Callable[[Item], Row], items: Sequence[Item],
                 workers: int | None = None) -> list[Row]:
    """`[function(item) for item in items]` in a process pool of `workers` (default: all
    cores), in order. `function` must be picklable (module level, or a partial of one)."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(items) or 1))
    if workers == 1:
        return [function(item) for item in items]
    # Small chunks keep every core busy when a few items take much longer than the rest.
    chunksize = max(1, len(items) // (workers * 16))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items, chunksize=chunksize))


def generate_seeded(make_one: Callable[[Job], Row], n: int, difficulty: str, seed: int,
                    workers: int | None = None, noun: str = "puzzles") -> list[Row]:
    """`make_one((seed, i, difficulty))` for i in range(n), on all cores."""
    start = time.perf_counter()
    rows = parallel_map(make_one, [(seed, index, difficulty) for index in range(n)], workers)
    logger.info("generated %d %s %s in %.1f s", n, difficulty, noun, time.perf_counter() - start)
    return rows


def write_rows(path: str | Path, fields: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """A CSV with header `fields`, one line per row; returns how many rows were written."""
    count = 0
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def read_rows(path: str | Path, fields: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV as dicts; raises ValueError naming any of `fields` it lacks."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in fields if name not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        return list(reader)

"""Example puzzles for the viewer and for people trying the API: a few bundled Sudokus (the
README's and easy ones from the committed held-out test set), the first mazes of the committed
maze test sets, and freshly generated puzzles of either task.

Generation is pure Python, so in this process it would hold the interpreter lock for as long
as it searches and starve the engines' threads. `ExampleGenerator` runs it in a small pool of
other processes at the lowest CPU priority (started on the first request, stopped with the app;
on a busy machine the engines' solves come first), admits a bounded number of generations at
once (more get 503 + Retry-After), and each search has a bounded number of tries (Sudoku:
digging attempts; mazes: carved mazes).
"""

from __future__ import annotations

import asyncio
import csv
import functools
import itertools
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Literal

import numpy as np

from app import errors
from trm_core.tasks import maze, maze_generate
from trm_core.tasks.sudoku import format_cells
from trm_core.tasks.sudoku_generate import generate_of_difficulty

log = logging.getLogger(__name__)
Difficulty = Literal["easy", "medium", "hard"]
# Hard puzzles take ~50 ms on one core; 200 attempts bound the rare unlucky draw.
_MAX_ATTEMPTS = 200
# A carve with its S draws takes a few ms; 300 bound a maze request to about a second.
_MAX_CARVES = 300
# The committed maze test sets (absent from an installed wheel: then only generation is offered).
MAZE_DATA = Path(__file__).resolve().parent.parent / "training" / "data"
MAZES_PER_SET = 3

SUDOKU_EXAMPLES: list[dict[str, Any]] = [
    {"name": "README example (32 givens)",
     "puzzle": ("..3.2.6..9..3.5..1..18.64....81.29..7...."
               "...8..67.82....26.95..8..2.3..9..5.1.3.."),
     "solution": ("48392165796734582125187649354813297672956"
                 "4138136798245372689514814253769695417382")},
    {"name": "held-out easy #1",
     "puzzle": (".53..6.2.1.653..4.8..1.23.....6.45.22.5.7"
               "94.84.82.1.3.5....8..4.84.236516...1...3"),
     "solution": ("95384612712653784984719236531968457226537"
                 "9418478251936531768294784923651692415783")},
    {"name": "held-out easy #2",
     "puzzle": ("1..48.9.6.6.....358.25..4..4.9..85.3.16.."
               "...952.63.14763.1..7982...95.1..4.8.6..2"),
     "solution": ("15348792676492183589256347147921856331675"
                 "4289528639147635142798287395614941876352")},
    {"name": "held-out easy #3",
     "puzzle": (".6.3..54..13.679..4.25...363.1.46.7...679"
               "3415...8..6...259....4694.7.35.8.7.5...1"),
     "solution": ("96832154751346798247258913635124687928679"
                 "3415749815623125938764694172358837654291")},
    {"name": "classic (30 givens, medium)",
     "puzzle": ("53..7....6..195....98....6.8...6...34..8."
               "3..17...2...6.6....28....419..5....8..79"),
     "solution": ("53467891267219534819834256785976142342685"
                 "3791713924856961537284287419635345286179")},
    # Harder than anything the shipped model trained on: wrong cells for several steps, then a
    # verified answer, which makes it the one to watch.
    {"name": "generated medium (28 givens, seed 18)",
     "puzzle": (".....2....26..87.4.8.....2..57....8.4..75"
               "19.......3.4..9.56.8.....3.42..6...89..."),
     "solution": ("34917265852693871478164532995742618343875"
                 "1962162893547294567831875314296613289475")},
]


@functools.cache
def maze_examples() -> list[dict[str, Any]]:
    """The first mazes of each committed test set."""
    examples: list[dict[str, Any]] = []
    for difficulty in ("easy", "hard"):
        path = MAZE_DATA / f"maze-{difficulty}-test.csv"
        if not path.exists():
            continue
        with path.open(newline="") as handle:
            rows = list(itertools.islice(csv.DictReader(handle), MAZES_PER_SET))
        for i, row in enumerate(rows, start=1):
            examples.append({"name": f"held-out {difficulty} #{i} ({row['path_length']} steps)",
                             "puzzle": row["puzzle"], "solution": row["solution"],
                             "path_length": int(row["path_length"]), "bucket": row["bucket"]})
    return examples


def _sudoku(difficulty: Difficulty, seed: int | None) -> dict[str, Any]:
    puzzle, solution, guesses = generate_of_difficulty(
        np.random.default_rng(seed), difficulty, max_attempts=_MAX_ATTEMPTS)
    return {"difficulty": difficulty, "puzzle": format_cells(puzzle),
            "solution": format_cells(solution), "givens": int(np.count_nonzero(puzzle)),
            "guesses": guesses, "seed": seed}


def _maze(difficulty: Difficulty, seed: int | None) -> dict[str, Any]:
    puzzle, solution, steps = maze_generate.generate_maze(
        np.random.default_rng(seed), maze_generate.DIFFICULTIES[difficulty],
        max_carves=_MAX_CARVES)
    return {"difficulty": difficulty, "puzzle": maze.format_cells(puzzle),
            "solution": maze.format_cells(solution), "path_length": steps,
            "junctions": maze_generate.junctions(puzzle), "seed": seed}


EXAMPLES: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "sudoku": lambda: SUDOKU_EXAMPLES, "maze": maze_examples}
_GENERATORS: dict[str, Callable[[Difficulty, int | None], dict[str, Any]]] = {
    "sudoku": _sudoku, "maze": _maze}


def generate(task: str, difficulty: Difficulty, seed: int | None) -> dict[str, Any]:
    """A fresh puzzle of `task` ("sudoku" or "maze") and `difficulty` with its unique
    solution; raises RuntimeError if none was found in time. Runs in a pool process."""
    return _GENERATORS[task](difficulty, seed)


def _lower_priority() -> None:
    """Runs first in each pool process. When every core is busy, a CPU-bound search at normal
    priority takes time slices from the engine thread; at the lowest it gets what is left."""
    if hasattr(os, "nice"):
        os.nice(19)


class ExampleGenerator:
    """`generate` in `workers` processes, at most `max_inflight` generations running or
    waiting; `close()` stops the processes."""

    def __init__(self, workers: int, max_inflight: int, retry_after_s: int) -> None:
        self.workers = workers
        self.max_inflight = max_inflight
        self.retry_after_s = retry_after_s
        # Released from the pool's thread when a generation ends, whether or not its client
        # is still waiting, so the bound counts work the processes really have.
        self._slots = threading.BoundedSemaphore(max_inflight)
        self._pool: ProcessPoolExecutor | None = None

    async def generate(self, task: str, difficulty: Difficulty,
                       seed: int | None = None) -> dict[str, Any]:
        """As `generate`; raises ApiError 503 when `max_inflight` generations are under way or
        the pool broke (a process died; the next request starts a new one)."""
        if not self._slots.acquire(blocking=False):
            raise errors.unavailable(
                "generator_busy", f"{self.max_inflight} example generations are running or "
                "waiting; retry shortly", self.retry_after_s)
        pool = self._executor()
        try:
            return await self._run(pool, task, difficulty, seed)
        except BrokenProcessPool:
            self._forget(pool)
            raise errors.unavailable("generator_failed", "the example generator stopped; retry",
                                     self.retry_after_s) from None

    async def _run(self, pool: ProcessPoolExecutor, task: str, difficulty: Difficulty,
                   seed: int | None) -> dict[str, Any]:
        try:
            future = pool.submit(generate, task, difficulty, seed)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _forget(self, pool: ProcessPoolExecutor) -> None:
        """A pool process died, which breaks the pool: the next request starts another."""
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def _release(self, _: Future[dict[str, Any]]) -> None:
        self._slots.release()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: forking this process (torch, engine and server threads) is unsafe.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                             initializer=_lower_priority)
            log.info("example generator: %d process(es)", self.workers)
        return self._pool

    async def close(self) -> None:
        """Stop the processes (a running generation finishes first; waiting ones are
        dropped)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

"""Seeded generation on all cores, shared by the tasks' puzzle generators: item i of a run is
made from (seed, i) alone, so the result depends only on (n, difficulty, seed), never on how
many worker processes made it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

logger = logging.getLogger(__name__)
Row = TypeVar("Row")
Job = tuple[int, int, str]  # (seed, index, difficulty)


def generate_seeded(make_one: Callable[[Job], Row], n: int, difficulty: str, seed: int,
                    workers: int | None = None, noun: str = "puzzles") -> list[Row]:
    """`make_one((seed, i, difficulty))` for i in range(n), in a process pool of `workers`
    (default: all cores). `make_one` must be a module-level function (it is pickled)."""
    jobs = [(seed, index, difficulty) for index in range(n)]
    workers = max(1, min(workers or os.cpu_count() or 1, n))
    start = time.perf_counter()
    if workers == 1:
        rows = [make_one(job) for job in jobs]
    else:
        # Small chunks keep every core busy when a few items take many attempts.
        chunksize = max(1, n // (workers * 16))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(make_one, jobs, chunksize=chunksize))
    logger.info("generated %d %s %s in %.1f s with %d workers", n, difficulty, noun,
                time.perf_counter() - start, workers)
    return rows

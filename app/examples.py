"""Example puzzles for the viewer and for people trying the API, as each task offers them
(`Task.examples`: Sudoku's bundled puzzles, the first mazes of the committed test sets), and
freshly generated puzzles (`Task.generate_example`).

Generation is pure Python, so in this process it would hold the interpreter lock for as long
as it searches and starve the engines' threads. `ExampleGenerator` runs it in a small pool of
other processes at the lowest CPU priority (started on the first request, stopped with the app;
on a busy machine the engines' solves come first), admits a bounded number of generations at
once (more get 503 + Retry-After), and each task bounds the tries of one search.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

from app import errors
from trm_core.tasks import TASKS, get_task

log = logging.getLogger(__name__)
Difficulty = Literal["easy", "medium", "hard"]


def offers_examples(task: str) -> bool:
    """True when registered task `task` has examples to list or can generate them."""
    return task in TASKS and (TASKS[task].generates_examples or bool(TASKS[task].examples()))


def generates(task: str) -> bool:
    """True when registered task `task` makes fresh puzzles on request."""
    return task in TASKS and TASKS[task].generates_examples


def example_tasks() -> list[str]:
    """The registered tasks that offer examples, by name."""
    return [name for name in TASKS if offers_examples(name)]


def examples(task: str) -> list[dict[str, Any]]:
    """The task's examples to try (`Task.examples`)."""
    return get_task(task).examples()


def generate(task: str, difficulty: Difficulty, seed: int | None) -> dict[str, Any]:
    """A fresh puzzle of `task` and `difficulty` with its unique solution
    (`Task.generate_example`); raises RuntimeError if none was found in time. Runs in a pool
    process."""
    return get_task(task).generate_example(difficulty, seed)


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

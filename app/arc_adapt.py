"""ARC's test-time adaptation on a host that runs ARC work (this process's local runner, or a
broker worker): fitted rows of adapted tasks, kept per (model, demonstrations digest, versions)
in a small LRU, and one fit at a time.

Fits run on a pool thread; `trm_core.tasks.arc.adapt` differentiates only the new rows, so the
engine thread keeps stepping the same model meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from app import errors
from app.arc_request import ArcGrids
from app.registry import ModelEntry
from app.settings import Settings
from trm_core.tasks.arc.adapt import AdaptConfig, AdaptedTask, fit_rows

log = logging.getLogger(__name__)
_FIT_SHARE = 0.8  # of the time left before the deadline a fit may take; predictions need the rest


class ArcAdapter:
    """Fits rows for new tasks and remembers them; one per host."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._adapted: OrderedDict[tuple[str, str, int], AdaptedTask] = OrderedDict()
        self._fit_lock: asyncio.Lock | None = None

    async def adapt(self, entry: ModelEntry, grids: ArcGrids, versions: int, budget_s: float,
                    deadline: float, on_progress: Callable[[dict[str, Any]], None],
                    should_stop: Callable[[], bool]) -> tuple[AdaptedTask, bool]:
        """Fitted rows for the task and whether they came from the cache; one fit at a time.
        The fit gets `budget_s`, or less once it may start: most of the time left before
        `deadline` (predictions need the rest), a 504 when none is. `should_stop` is polled
        from the fitting thread before every micro-batch, so a cancelled fit frees the lock
        (and its memory) within one."""
        key = (entry.id, grids.digest, versions)
        if self._fit_lock is None:
            self._fit_lock = asyncio.Lock()
        async with self._fit_lock:
            cached = self._cached(key)
            if cached is not None:
                return cached, True
            budget_s = min(budget_s, _FIT_SHARE * (deadline - time.monotonic()))
            if budget_s <= 0:
                raise errors.timeout("the deadline passed while earlier requests adapted")
            config = AdaptConfig(budget_s=budget_s, max_steps=self.settings.arc_adapt_max_steps,
                                 seed=grids.seed,
                                 micro_batch=self.settings.arc_adapt_micro_batch)
            adapted = await asyncio.to_thread(
                fit_rows, entry.engine.model, grids.demos, grids.tests, versions, config,
                autocast_dtype=entry.engine.autocast_dtype, on_progress=on_progress,
                should_stop=should_stop)
        log.info("adapted %s rows for task %s in %.2f s (%d steps, stopped: %s, demo exact "
                 "%.2f)", versions, grids.digest[:12], adapted.report.seconds,
                 adapted.report.steps, adapted.report.stopped, adapted.report.demo_exact)
        if adapted.report.stopped != "cancelled" and adapted.report.steps:
            self._remember(key, adapted)  # a fit cut short before its first step is no fit
        return adapted, False

    def _cached(self, key: tuple[str, str, int]) -> AdaptedTask | None:
        adapted = self._adapted.get(key)
        if adapted is not None:
            self._adapted.move_to_end(key)
        return adapted

    def _remember(self, key: tuple[str, str, int], adapted: AdaptedTask) -> None:
        if self.settings.arc_adapt_cache_size == 0:
            return
        self._adapted[key] = adapted
        self._adapted.move_to_end(key)
        while len(self._adapted) > self.settings.arc_adapt_cache_size:
            self._adapted.popitem(last=False)

"""ARC admission and test-time adaptation: the service side of `POST /v1/solve/arc` and
`POST /v1/jobs/arc`.

An ARC request becomes one `TrackedJob` (so waiting, streaming, the jobs API, cancelling and
drain work as for any solve), handed to the runner as an `ArcWork` job; the local runner drives
it with an `ArcRun` task on the event loop, which feeds many engine jobs (versions x test
inputs) to the model's engine beside other traffic. Fitted rows of
adapted tasks are kept per (model, demonstrations digest, versions) in a small LRU.

Admission is the service's (`SolveService.admission`: 404, 503 draining or not ready) plus what
an ARC request may cost: limits on pairs, test inputs, versions and fitted examples (422 naming
the limit), and at most `TRM_ARC_MAX_QUEUE_SIZE` admitted, unfinished requests per model (503 +
Retry-After). Fits run one at a time on a pool thread; `trm_core.tasks.arc.adapt`
differentiates only the new rows, so the engine thread keeps stepping the same model meanwhile.
A runner that cannot run ARC work refuses it (501).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app import errors
from app.arc_request import (
    ArcGrids,
    KnownTasks,
    check_fit_size,
    check_limits,
    parse_task,
    plan_request,
)
from app.arc_schemas import ArcSolveRequest
from app.errors import ApiError
from app.jobs import RecordKind, TrackedJob
from app.ledger import ENDPOINT_OF
from app.registry import ModelEntry
from app.runners.base import ArcWork
from trm_core.tasks.arc.adapt import AdaptConfig, AdaptedTask, fit_rows

if TYPE_CHECKING:
    from app.service import SolveService

log = logging.getLogger(__name__)
TASK = "arc"
_FIT_SHARE = 0.8  # of the time left before the deadline a fit may take; predictions need the rest


class ArcService:
    """Admits ARC requests and owns the adapted-rows cache; one per `SolveService`."""

    def __init__(self, service: SolveService) -> None:
        self.service = service
        self.settings = service.settings
        self._known: dict[str, KnownTasks | None] = {}
        self._adapted: OrderedDict[tuple[str, str, int], AdaptedTask] = OrderedDict()
        self._fit_lock: asyncio.Lock | None = None
        # Admitted, unfinished requests per model: at most TRM_ARC_MAX_QUEUE_SIZE each.
        self._open: defaultdict[str, list[TrackedJob]] = defaultdict(list)

    # ------------------------------------------------------------------------- admission

    def admit(self, request: ArcSolveRequest, *, kind: RecordKind, request_id: str,
              keep_events: bool) -> TrackedJob:
        """Check, plan and start one ARC request; raises `ApiError` for every refusal."""
        endpoint = ENDPOINT_OF[kind]
        self.service.registry.require_task(TASK)
        entry = self.service.admission(TASK, request.model, endpoint, "arc")
        try:
            versions, max_steps = check_limits(request, entry, self.settings)
            grids = parse_task(request)
            plan = plan_request(request, entry, grids, self._known_tasks(entry), versions,
                                max_steps)
            check_fit_size(plan, grids, self.settings.arc_max_examples)
        except ApiError:
            entry.metrics.finished(endpoint, "invalid")
            raise
        open_records = [r for r in self._open[entry.id] if not r.terminal]
        self._open[entry.id] = open_records
        if len(open_records) >= self.settings.arc_max_queue_size:
            self.service.reject(TASK, request.model, endpoint, "queue_full")
        record = self.service.store.create(kind, TASK, entry.id, max_steps, request_id,
                                           keep_events=keep_events)
        # accepted, adaptation progress (one per 10 fit steps), one per version, terminal
        record.events = deque(maxlen=plan.versions + self.settings.arc_adapt_max_steps // 10 + 8)
        work = ArcWork(grids, plan, self.service.deadline(kind, request.timeout_ms),
                       self._budget(request),
                       {"mode": plan.mode, "versions": plan.versions,
                        "test_inputs": len(grids.tests)})
        self.service.run(record, entry, work)
        open_records.append(record)
        return record

    def _known_tasks(self, entry: ModelEntry) -> KnownTasks | None:
        """The entry's sidecar indexed once (a million rows take a while to walk)."""
        if entry.id not in self._known:
            table, dim = entry.identifiers, entry.checkpoint.config.puzzle_emb_dim
            self._known[entry.id] = KnownTasks.of(table) if table is not None and dim else None
        return self._known[entry.id]

    def _budget(self, request: ArcSolveRequest) -> float:
        """Adaptation seconds asked for: the request's (or the default), capped by the
        server's."""
        asked = request.adapt_budget_s or self.settings.arc_adapt_budget_s
        return min(asked, self.settings.arc_adapt_max_budget_s)

    # ---------------------------------------------------------------------- adaptation

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

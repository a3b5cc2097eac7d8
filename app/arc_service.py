"""ARC admission and test-time adaptation: the service side of `POST /v1/solve/arc` and
`POST /v1/jobs/arc`.

An ARC request becomes one `JobRecord` (so waiting, streaming, the jobs API, cancelling and
drain work as for any solve) driven by an `ArcRun` task on the event loop, which feeds many
engine jobs (versions x test inputs) to the model's engine beside other traffic. Fitted rows of
adapted tasks are kept per (model, demonstrations digest, versions) in a small LRU.

Fits run one at a time on a pool thread; `trm_core.arc_adapt` differentiates only the new rows,
so the engine thread keeps stepping the same model meanwhile. Broker mode refuses ARC (501):
its workers do not run adaptation or voting yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.arc_request import ArcGrids, KnownTasks, check_limits, parse_task, plan_request
from app.arc_run import ArcRun
from app.arc_schemas import ArcSolveRequest
from app.errors import ApiError
from app.jobs import JobRecord, RecordKind
from app.registry import ModelEntry
from trm_core.arc_adapt import AdaptConfig, AdaptedTask, fit_rows

if TYPE_CHECKING:
    from app.service import SolveService

log = logging.getLogger(__name__)
TASK = "arc"
_ENDPOINT: dict[RecordKind, str] = {"solve": "solve", "job": "jobs", "mcp": "mcp"}


class ArcService:
    """Admits ARC requests and owns the adapted-rows cache; one per `SolveService`."""

    def __init__(self, service: SolveService) -> None:
        self.service = service
        self.settings = service.settings
        self._known: dict[str, KnownTasks | None] = {}
        self._adapted: OrderedDict[tuple[str, str, int], AdaptedTask] = OrderedDict()
        self._fit_lock: asyncio.Lock | None = None
        self._runs: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------- admission

    def admit(self, request: ArcSolveRequest, *, kind: RecordKind, request_id: str,
              keep_events: bool) -> JobRecord:
        """Check, plan and start one ARC request; raises `ApiError` for every refusal."""
        endpoint = _ENDPOINT[kind]
        entry = self._entry(request.model, endpoint)
        try:
            grids = parse_task(request)
            versions, max_steps = check_limits(request, entry, self.settings.arc_versions,
                                               self.settings.arc_max_versions)
        except ApiError:
            entry.metrics.finished(endpoint, "invalid")
            raise
        plan = plan_request(request, entry, grids, self._known_tasks(entry), versions, max_steps)
        store = self.service.store
        record = store.create(kind, TASK, entry.id, max_steps, request_id,
                              keep_events=keep_events)
        # accepted, adaptation progress (one per 10 fit steps), one per version, terminal
        record.events = deque(maxlen=plan.versions + self.settings.arc_adapt_max_steps // 10 + 8)
        deadline = self.service._deadline(kind, request.timeout_ms)
        run = ArcRun(self, entry, record, grids, plan, deadline,
                     self._budget(request, deadline))
        self.service._inflight[record.id] = record
        self.service.cancel_hooks[record.id] = run.cancel
        store.publish(record, "solve.accepted", {
            "id": record.id, "task": TASK, "model": entry.id,
            "queue_position": entry.engine.queue_depth, "max_steps": max_steps,
            "mode": plan.mode, "versions": plan.versions, "test_inputs": len(grids.tests)})
        task = asyncio.get_running_loop().create_task(run.execute(), name=f"arc:{record.id}")
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return record

    def _entry(self, ref: str | None, endpoint: str) -> ModelEntry:
        """The ARC model to use: 404 without one (as for any task), 501 in broker mode, then
        the usual checks."""
        service = self.service
        service.registry.require_task(TASK)
        if service.remote is not None:
            raise ApiError(501, "not-implemented", "ARC tasks are not served in broker mode "
                           "(TRM_REDIS_URL) yet; run the service without a broker for them")
        if service.draining or not service.started:
            service._reject(TASK, ref, endpoint, "draining" if service.draining else "not_ready")
        entry = service._resolve(TASK, ref)
        if not entry.worker.alive:
            service._reject(TASK, ref, endpoint, "not_ready")
        return entry

    def _known_tasks(self, entry: ModelEntry) -> KnownTasks | None:
        """The entry's sidecar indexed once (a million rows take a while to walk)."""
        if entry.id not in self._known:
            table, dim = entry.identifiers, entry.checkpoint.config.puzzle_emb_dim
            self._known[entry.id] = KnownTasks.of(table) if table is not None and dim else None
        return self._known[entry.id]

    def _budget(self, request: ArcSolveRequest, deadline: float) -> float:
        """Adaptation seconds: the request's (or the default), capped by the server's and by
        most of the time left before the deadline (predictions need the rest)."""
        asked = request.adapt_budget_s or self.settings.arc_adapt_budget_s
        left = 0.8 * (deadline - time.monotonic())
        return max(0.05, min(asked, self.settings.arc_adapt_max_budget_s, left))

    # ---------------------------------------------------------------------- adaptation

    async def adapt(self, entry: ModelEntry, grids: ArcGrids, versions: int, budget_s: float,
                    on_progress: Callable[[dict[str, Any]], None],
                    should_stop: Callable[[], bool]) -> tuple[AdaptedTask, bool]:
        """Fitted rows for the task and whether they came from the cache; one fit at a time.
        `should_stop` is polled from the fitting thread after every step."""
        key = (entry.id, grids.digest, versions)
        if self._fit_lock is None:
            self._fit_lock = asyncio.Lock()
        async with self._fit_lock:
            cached = self._cached(key)
            if cached is not None:
                return cached, True
            config = AdaptConfig(budget_s=budget_s, max_steps=self.settings.arc_adapt_max_steps,
                                 seed=grids.seed)
            adapted = await asyncio.to_thread(
                fit_rows, entry.engine.model, grids.demos, grids.tests, versions, config,
                autocast_dtype=entry.engine.autocast_dtype, on_progress=on_progress,
                should_stop=should_stop)
        log.info("adapted %s rows for task %s in %.2f s (%d steps, demo exact %.2f)", versions,
                 grids.digest[:12], adapted.report.seconds, adapted.report.steps,
                 adapted.report.demo_exact)
        if adapted.report.stopped != "cancelled":
            self._remember(key, adapted)
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

    def forget_run(self, record: JobRecord) -> None:
        """Called by a run when it ends, whatever the outcome."""
        self.service.cancel_hooks.pop(record.id, None)
        self.service._inflight.pop(record.id, None)

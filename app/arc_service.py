"""ARC admission: the service side of `POST /v1/solve/arc` and `POST /v1/jobs/arc`.

An ARC request becomes one `TrackedJob` (so waiting, streaming, the jobs API, cancelling and
drain work as for any solve), handed to the runner as `TaskWork` of ARC's job kind
(`app.arc_job`): the local runner runs it on this process's engines, the broker runner queues it
for a broker worker, and either drives it with the same `ArcRun`, which adapts rows when the task
is new and feeds many engine jobs (versions x test inputs) to the model's engine beside other
traffic.

Admission is the service's (`SolveService.admission`: 404, 503 draining or not ready) plus what
an ARC request may cost: limits on pairs, test inputs, versions and fitted examples (422 naming
the limit), and at most `TRM_ARC_MAX_QUEUE_SIZE` admitted, unfinished requests per model on
this replica (503 + Retry-After), whichever runner serves it.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from typing import TYPE_CHECKING

from app.arc_job import KIND, ArcWork
from app.arc_request import (
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
from app.runners.base import TaskWork

if TYPE_CHECKING:
    from app.service import SolveService

log = logging.getLogger(__name__)
TASK = "arc"


class ArcService:
    """Admits ARC requests; one per `SolveService` (`ArcService.of`)."""

    def __init__(self, service: SolveService) -> None:
        self.service = service
        self.settings = service.settings
        self._known: dict[str, KnownTasks | None] = {}
        # Admitted, unfinished requests per model: at most TRM_ARC_MAX_QUEUE_SIZE each.
        self._open: defaultdict[str, list[TrackedJob]] = defaultdict(list)

    @classmethod
    def of(cls, service: SolveService) -> ArcService:
        """The service's ARC admission, made on first use."""
        arc = service.extensions.get(TASK)
        if arc is None:
            arc = service.extensions[TASK] = cls(service)
        assert isinstance(arc, cls)
        return arc

    # ------------------------------------------------------------------------- admission

    def admit(self, request: ArcSolveRequest, *, kind: RecordKind, request_id: str,
              keep_events: bool) -> TrackedJob:
        """Check, plan and start one ARC request; raises `ApiError` for every refusal."""
        endpoint = ENDPOINT_OF[kind]
        self.service.registry.require_task(TASK)
        entry = self.service.admission(TASK, request.model, endpoint, KIND)
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
        work = TaskWork(KIND, ArcWork(grids, plan, self._budget(request)),
                        self.service.deadline(kind, request.timeout_ms),
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

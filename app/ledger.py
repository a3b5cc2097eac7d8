"""The one place a job's record changes after admission: accepted, running, its events, and its
end, where it is counted in the metrics.

Every runner (local engine threads and task runs, the Redis broker) reports through a `Ledger`;
what they report is built by `app.payloads`. Everything here runs on the event loop thread.
Boundaries: no FastAPI, no Redis, no engine.
"""

from __future__ import annotations

import time
from typing import Any

from app import payloads
from app.errors import ApiError
from app.jobs import JobStore, RecordKind, TrackedJob
from app.payloads import Ending
from app.registry import ModelRegistry
from app.settings import Settings

ENDPOINT_OF: dict[RecordKind, str] = {"solve": "solve", "job": "jobs", "mcp": "mcp"}


class Ledger:
    """Records in flight on this replica, and the transitions every runner reports."""

    def __init__(self, settings: Settings, registry: ModelRegistry, store: JobStore) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.inflight: dict[str, TrackedJob] = {}

    def accept(self, record: TrackedJob, queue_position: int, **extra: Any) -> None:
        """The job is queued: in flight here, with its `solve.accepted` event."""
        self.inflight[record.id] = record
        self.store.publish(record, "solve.accepted",
                           payloads.accepted_data(record, queue_position, **extra))

    def track(self, record: TrackedJob) -> None:
        """In flight here, its accepted event to come from elsewhere (the broker)."""
        self.inflight[record.id] = record

    def running(self, record: TrackedJob, elapsed_ms: float) -> None:
        """A step arrived; the first one marks the job running and times its first step."""
        if record.first_step_mono is not None or record.terminal:
            return
        record.first_step_mono = time.monotonic()
        record.status = "running"
        entry = self.registry.entries.get(record.model)
        if entry is not None:
            entry.metrics.first_step(elapsed_ms / 1000)

    def publish(self, record: TrackedJob, name: str, data: dict[str, Any],
                event_id: int | None = None) -> None:
        """A non-terminal event (a step, ARC progress); none once the record ended."""
        if not record.terminal:
            self.store.publish(record, name, data, event_id=event_id)

    def end(self, record: TrackedJob, ending: Ending) -> bool:
        """The single place a record ends: state, terminal event, metrics. False when it had
        already ended (a late engine word after a cancel)."""
        self.inflight.pop(record.id, None)
        result = ending.data if ending.state == "succeeded" else None
        error = ending.data if ending.state == "failed" else None
        if not self.store.finish(record, ending.state, ending.outcome, ending.name,
                                 ending.data, result=result, error=error):
            return False
        entry = self.registry.entries.get(record.model)
        if entry is not None:
            entry.metrics.finished(ENDPOINT_OF[record.kind], ending.outcome,
                                   time.monotonic() - record.started, ending.queue_s,
                                   ending.steps)
        return True

    def fail(self, record: TrackedJob, error: ApiError, outcome: str | None = None,
             steps: int | None = None) -> bool:
        return self.end(record, payloads.failed(
            record, error, outcome or payloads.outcome_of(error),
            self.settings.problem_base_uri, steps))

    def cancel(self, record: TrackedJob, reason: str) -> bool:
        return self.end(record, payloads.cancelled(record, reason))

    def fail_inflight(self) -> None:
        """At the end of a drain: every job still in flight fails with the shutdown 503."""
        error = payloads.shutdown_error(self.settings.retry_after_s)
        for record in list(self.inflight.values()):
            self.fail(record, error, "rejected")

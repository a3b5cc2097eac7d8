"""Job records, their per-job event logs, live subscribers, and TTL cleanup of finished jobs.

Every admitted puzzle, from `POST /v1/solve` or `POST /v1/jobs`, becomes a `JobRecord`. Its event
log is a ring of at most `max_steps + 2` events (accepted, one per step, one terminal), enough to
replay a whole job to a reconnecting client. Only `POST /v1/jobs` records are addressable by id;
solve records live as long as their request.

Everything here runs on the event loop thread (the worker bridge guarantees it), so no locks.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
RecordKind = Literal["solve", "job", "mcp"]
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
# MCP tool calls are sync solves made over another transport: same result ids.
_ID_PREFIX = {"solve": "slv_", "job": "job_", "mcp": "slv_"}


@dataclass(frozen=True)
class Event:
    """One server-sent event: `id` is the step number (0 = accepted); `data` carries `type` and
    `sequence_number` too, so clients that ignore the SSE fields still understand it."""

    id: int
    name: str
    data: dict[str, Any]


@dataclass(eq=False)
class JobRecord:
    """The service's view of one job: state, outcome, event log and live subscribers."""

    id: str
    kind: RecordKind
    task: str
    model: str
    max_steps: int
    request_id: str
    keep_events: bool  # False for plain sync solves: nobody will read step events
    return_steps: bool = False
    created_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    status: JobState = "queued"
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    outcome: str | None = None  # the metrics outcome, set when the record finishes
    finished_at: float | None = None
    finished_mono: float | None = None
    first_step_mono: float | None = None
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    events: deque[Event] = field(init=False)
    subscribers: set[asyncio.Queue[Event | None]] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    next_event_id: int = 0

    def __post_init__(self) -> None:
        self.events = deque(maxlen=self.max_steps + 2)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    def snapshot(self) -> dict[str, Any]:
        """The job object served by `GET /v1/jobs/{id}`."""
        body: dict[str, Any] = {
            "id": self.id, "object": "job", "status": self.status, "task": self.task,
            "model": self.model, "created_at": _iso(self.created_at),
        }
        if self.finished_at is not None:
            body["finished_at"] = _iso(self.finished_at)
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


class JobStore:
    """Addressable jobs by id, event fan-out, and expiry `ttl_s` after they finish."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._jobs: dict[str, JobRecord] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def create(self, kind: RecordKind, task: str, model: str, max_steps: int, request_id: str,
               *, keep_events: bool, return_steps: bool = False) -> JobRecord:
        record = JobRecord(f"{_ID_PREFIX[kind]}{uuid.uuid4().hex}", kind, task, model, max_steps,
                           request_id, keep_events, return_steps, started=self._clock())
        if kind == "job":
            self._jobs[record.id] = record
        return record

    def add(self, record: JobRecord) -> None:
        """Make a record built elsewhere addressable (broker mode: a job of another replica)."""
        self._jobs[record.id] = record

    def get(self, job_id: str) -> JobRecord | None:
        return self._jobs.get(job_id)

    def forget(self, record: JobRecord) -> None:
        """Drop a record the engine never accepted."""
        self._jobs.pop(record.id, None)

    def publish(self, record: JobRecord, name: str, data: dict[str, Any],
                event_id: int | None = None) -> Event:
        """Append an event to the record's log and hand it to every live subscriber.

        Ids only grow: a requested id at or below the last one is bumped past it."""
        eid = record.next_event_id if event_id is None else max(event_id, record.next_event_id)
        record.next_event_id = eid + 1
        event = Event(eid, name, {"type": name, "sequence_number": eid, **data})
        record.events.append(event)
        for queue in record.subscribers:
            queue.put_nowait(event)
        return event

    def finish(self, record: JobRecord, status: JobState, outcome: str, name: str,
               data: dict[str, Any], *, result: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None) -> bool:
        """Move a record to a terminal state with its terminal event; False (and no change)
        when it already finished, so late engine callbacks after a cancel are ignored."""
        if record.terminal:
            return False
        record.status, record.outcome = status, outcome
        record.result, record.error = result, error
        record.finished_at, record.finished_mono = time.time(), self._clock()
        self.publish(record, name, data)
        for queue in record.subscribers:
            queue.put_nowait(None)  # end of stream
        record.subscribers.clear()
        record.done.set()
        return True

    def subscribe(self, record: JobRecord,
                  after: int = -1) -> tuple[list[Event], asyncio.Queue[Event | None] | None]:
        """Logged events with id > `after`, and a queue of the live ones that follow (None when
        the job already finished: the replay is all there is)."""
        replay = [event for event in record.events if event.id > after]
        if record.terminal:
            return replay, None
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        record.subscribers.add(queue)
        return replay, queue

    def unsubscribe(self, record: JobRecord, queue: asyncio.Queue[Event | None] | None) -> None:
        if queue is not None:
            record.subscribers.discard(queue)

    def sweep(self) -> int:
        """Forget addressable jobs that finished more than `ttl_s` ago; returns how many."""
        cutoff = self._clock() - self.ttl_s
        expired = [job_id for job_id, record in self._jobs.items()
                   if record.finished_mono is not None and record.finished_mono <= cutoff]
        for job_id in expired:
            del self._jobs[job_id]
        return len(expired)

    async def sweep_forever(self, interval_s: float) -> None:
        """Background task: sweep every `interval_s` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.sweep()

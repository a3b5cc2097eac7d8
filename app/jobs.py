"""Job records, their per-job event logs, live subscribers, and the bounded store of finished
jobs.

Every admitted puzzle, from `POST /v1/solve` or `POST /v1/jobs`, becomes a `TrackedJob`. Its event
log is a ring of at most `max_steps + 2` events (accepted, one per step, one terminal), enough to
replay a whole job to a reconnecting client. Only `POST /v1/jobs` records are addressable by id;
solve records live as long as their request.

Finished addressable jobs stay `ttl_s`, within two caps: their count and the bytes (as JSON) of
their event logs. Over the byte cap the oldest logs shrink to their terminal event (which holds
the result, so a poll still answers and a resumed stream still ends properly); over either cap
after that, the oldest finished jobs are forgotten. Unfinished jobs are never touched: admission
bounds them.

Everything here runs on the event loop thread (the worker bridge guarantees it), so no locks.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import OrderedDict, deque
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
class TrackedJob:
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
    """Addressable jobs by id, event fan-out, and the finished jobs' expiry (`ttl_s` after they
    finish) and caps (`max_jobs`, `max_bytes`; None: no cap)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic, *,
                 max_jobs: int | None = None, max_bytes: int | None = None) -> None:
        self.ttl_s = ttl_s
        self.max_jobs = max_jobs
        self.max_bytes = max_bytes
        self._clock = clock
        self._jobs: dict[str, TrackedJob] = {}
        self._finished: OrderedDict[str, int] = OrderedDict()  # id -> log bytes, oldest first
        self._full_logs: OrderedDict[str, None] = OrderedDict()  # finished, log not yet shrunk
        self.finished_bytes = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def create(self, kind: RecordKind, task: str, model: str, max_steps: int, request_id: str,
               *, keep_events: bool, return_steps: bool = False) -> TrackedJob:
        record = TrackedJob(f"{_ID_PREFIX[kind]}{uuid.uuid4().hex}", kind, task, model, max_steps,
                           request_id, keep_events, return_steps, started=self._clock())
        if kind == "job":
            self._jobs[record.id] = record
        return record

    def add(self, record: TrackedJob) -> None:
        """Make a record built elsewhere addressable (broker mode: a job of another replica)."""
        self._jobs[record.id] = record

    def get(self, job_id: str) -> TrackedJob | None:
        return self._jobs.get(job_id)

    def forget(self, record: TrackedJob) -> None:
        """Drop a record the engine never accepted."""
        if self._jobs.get(record.id) is record:
            self._drop(record.id)

    def publish(self, record: TrackedJob, name: str, data: dict[str, Any],
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

    def finish(self, record: TrackedJob, status: JobState, outcome: str, name: str,
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
        if self._jobs.get(record.id) is record:
            self._keep_finished(record)
        return True

    def subscribe(self, record: TrackedJob,
                  after: int = -1) -> tuple[list[Event], asyncio.Queue[Event | None] | None]:
        """Logged events with id > `after`, and a queue of the live ones that follow (None when
        the job already finished: the replay is all there is)."""
        replay = [event for event in record.events if event.id > after]
        if record.terminal:
            return replay, None
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        record.subscribers.add(queue)
        return replay, queue

    def unsubscribe(self, record: TrackedJob, queue: asyncio.Queue[Event | None] | None) -> None:
        if queue is not None:
            record.subscribers.discard(queue)

    def sweep(self) -> int:
        """Forget addressable jobs that finished more than `ttl_s` ago; returns how many."""
        cutoff = self._clock() - self.ttl_s
        expired = 0
        for job_id in list(self._finished):  # oldest first: stop at the first one to keep
            finished = self._jobs[job_id].finished_mono
            if finished is not None and finished > cutoff:
                break
            self._drop(job_id)
            expired += 1
        return expired

    # ----------------------------------------------------------------------- finished caps

    def _keep_finished(self, record: TrackedJob) -> None:
        size = _log_bytes(record)
        self._finished[record.id] = size
        self._full_logs[record.id] = None
        self.finished_bytes += size
        self._enforce_caps()

    def _enforce_caps(self) -> None:
        """Shrink the oldest logs while over the byte cap, then forget the oldest jobs while
        over either cap; the job that finished last is always kept."""
        while self._over_bytes() and self._full_logs:
            job_id, _ = self._full_logs.popitem(last=False)
            self._shrink(self._jobs[job_id])
        while len(self._finished) > 1 and (self._over_bytes() or (
                self.max_jobs is not None and len(self._finished) > self.max_jobs)):
            self._drop(next(iter(self._finished)))

    def _over_bytes(self) -> bool:
        return self.max_bytes is not None and self.finished_bytes > self.max_bytes

    def _shrink(self, record: TrackedJob) -> None:
        """Keep only the terminal event: what a poll and a resumed stream need."""
        record.events = deque(list(record.events)[-1:], maxlen=record.events.maxlen)
        size = _log_bytes(record)
        self.finished_bytes += size - self._finished[record.id]
        self._finished[record.id] = size

    def _drop(self, job_id: str) -> None:
        del self._jobs[job_id]
        self.finished_bytes -= self._finished.pop(job_id, 0)
        self._full_logs.pop(job_id, None)

    async def sweep_forever(self, interval_s: float) -> None:
        """Background task: sweep every `interval_s` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.sweep()


def _log_bytes(record: TrackedJob) -> int:
    """The size of a record's event log as JSON (its terminal event holds the result)."""
    return sum(len(json.dumps(event.data, separators=(",", ":"), default=str))
               for event in record.events)

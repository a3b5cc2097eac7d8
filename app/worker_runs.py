"""A broker worker's runs of tasks' own job kinds (`app.task_runs`: ARC's adapt-then-vote), on an
event loop thread of their own.

The worker's main thread takes a job whose message names a job kind and hands it here; the run
executes on this loop exactly as the local runner executes it on the service's loop, feeding the
same engine, and what it reports goes to the worker's publisher through `emit`: ("event", (name,
data)) for its events, ("end", (name, data)) for its terminal one. A cancel ends the run without
an ending of its own: the cancelled terminal event it then emits only acks the message (the API
wrote the real one first). A run abandoned when the worker stops emits nothing, so its message
stays pending and another worker reclaims it. Boundaries: no FastAPI, no Redis.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from app import errors, payloads
from app.broker import JobMessage
from app.engine_thread import LoopBridge
from app.errors import ApiError
from app.registry import ModelEntry
from app.settings import Settings
from app.task_jobs import job_kinds
from app.task_runs import RunContext, RunSink, TaskRun

log = logging.getLogger(__name__)
Emit = Callable[[str, tuple[str, dict[str, Any]]], None]


class StreamSink(RunSink):
    """A task run's reports as writes to its job's event stream (loop thread)."""

    def __init__(self, message: JobMessage, emit: Emit, problem_base_uri: str) -> None:
        self.message, self.emit, self.problem_base_uri = message, emit, problem_base_uri
        self.done = asyncio.Event()
        self.finished = self.cancelled = self.abandoned = False

    @property
    def ended(self) -> bool:
        return self.finished or self.cancelled or self.abandoned

    def publish(self, name: str, data: dict[str, Any]) -> None:
        self.emit("event", (name, data))

    def complete(self, body: dict[str, Any]) -> None:
        self._end("solve.completed", body)

    def fail(self, error: ApiError, outcome: str) -> None:
        self._end("solve.failed", error.to_problem(self.message.request_id,
                                                   self.problem_base_uri))

    def _end(self, name: str, data: dict[str, Any]) -> None:
        if not self.ended:
            self.finished = True
            self.emit("end", (name, data))
            self.done.set()


class WorkerRuns:
    """Task runs on one loop thread; `take`, `cancel`, `notify_room` and `abandon_all` are
    called from the worker's other threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kinds = job_kinds(settings)
        self.loop = asyncio.new_event_loop()
        self.bridge = LoopBridge(self.loop)
        self._thread = threading.Thread(target=self.loop.run_forever, name="task-runs",
                                        daemon=True)
        self._active: set[str] = set()  # job ids taken and not yet ended (any thread reads)
        self._runs: dict[str, tuple[TaskRun, StreamSink]] = {}  # loop thread only
        self._early: dict[str, bool] = {}  # stopped before their run started: abandon?
        self._room: dict[str, asyncio.Event] = {}  # per model, loop thread only

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5.0)

    def __len__(self) -> int:
        return len(self._active)

    def holds(self, job_id: str) -> bool:
        """Whether this worker runs the job now (a reclaim of it must not start it twice)."""
        return job_id in self._active

    def take(self, message: JobMessage, entry: ModelEntry, emit: Emit) -> None:
        """Start the message's run on the loop."""
        self._active.add(message.job_id)
        asyncio.run_coroutine_threadsafe(self._run(message, entry, emit), self.loop)

    def cancel(self, job_id: str) -> None:
        self.loop.call_soon_threadsafe(self._stop, job_id, False)

    def abandon_all(self) -> None:
        """Stop every run without a word: their messages stay pending for another worker."""
        for job_id in list(self._active):
            self.loop.call_soon_threadsafe(self._stop, job_id, True)

    def notify_room(self, model: str) -> None:
        """A job of `model`'s engine finished: runs waiting for room in its queue retry."""
        self.loop.call_soon_threadsafe(self._room_in(model).set)

    # ----------------------------------------------------------------------- loop thread

    async def _run(self, message: JobMessage, entry: ModelEntry, emit: Emit) -> None:
        sink = StreamSink(message, emit, self.settings.problem_base_uri)
        try:
            run = self.kinds[message.work].start(self._context(message, entry, sink),
                                                 self.kinds[message.work].decode(message.spec))
            self._runs[message.job_id] = (run, sink)
            if message.job_id in self._early:
                self._stop(message.job_id, self._early.pop(message.job_id))
            await run.execute()
        except Exception:
            log.exception("job %s of kind %s failed", message.job_id, message.work)
            sink.fail(errors.internal(), "error")
        finally:
            self._runs.pop(message.job_id, None)
            self._active.discard(message.job_id)
        if sink.cancelled and not sink.finished:  # acks the message; the API ended the job
            emit("end", ("solve.cancelled", payloads.cancelled_data(message, "cancelled")))

    def _context(self, message: JobMessage, entry: ModelEntry, sink: StreamSink) -> RunContext:
        now = time.monotonic()
        waited_s = max(0.0, time.time() - message.created_at) if message.created_at else 0.0
        return RunContext(message.job_id, now - waited_s, now + message.remaining_s(), entry,
                          sink, self.bridge, lambda: False, self._room_in(entry.id))

    def _stop(self, job_id: str, abandon: bool) -> None:
        held = self._runs.get(job_id)
        if held is None:
            if job_id in self._active:
                self._early[job_id] = abandon
            return
        run, sink = held
        if abandon:
            sink.abandoned = True
        else:
            sink.cancelled = True
        sink.done.set()
        run.cancel()

    def _room_in(self, model: str) -> asyncio.Event:
        return self._room.setdefault(model, asyncio.Event())

"""One ARC request in flight: adapt rows when the task is new, predict every (version, test
input) through the model's engine, vote per test input, report the ending.

The one driver of ARC's adapt-then-vote, wherever it runs: the local runner starts it on the
service's event loop (reporting to the ledger), a broker worker on its own loop (reporting to the
job's Redis stream); both inject a `RunContext` (`app.task_runs`) and an `ArcAdapter`. Engine
and fitting-thread callbacks reach the run through the context's loop bridge. At most `slots` of
its engine jobs are queued or running at once, so a request of a thousand versions shares the
engine with other traffic instead of filling its queue. Events: `arc.adapt` (fit progress, then
one with `done: true`), `arc.progress` (a version answered every test input), then the usual
terminal `solve.completed` / `solve.failed` (a cancel ends the job where it was asked for).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from app import errors, payloads
from app.errors import ApiError
from app.task_runs import RunContext
from trm_core.engine import Job, JobResult, QueueFull
from trm_core.tasks.arc.vote import Ballot

if TYPE_CHECKING:
    from app.arc_adapt import ArcAdapter
    from app.arc_job import ArcWork

log = logging.getLogger(__name__)
ATTEMPTS = 2  # the benchmark's pass@2
_GRACE_S = 5.0  # past the deadline, the run stops waiting for the engine


class _Ended(Exception):
    """The job ended elsewhere (cancel, drain, a stopping worker); the run just stops."""


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


class ArcRun:
    """Drives one ARC job from admission to its ending."""

    def __init__(self, context: RunContext, adapter: ArcAdapter, work: ArcWork,
                 retry_after_s: int) -> None:
        self.context, self.adapter, self.retry_after_s = context, adapter, retry_after_s
        self.sink, self.bridge, self.draining = context.sink, context.bridge, context.draining
        self.room = context.room  # set whenever a job of this engine finishes: it has room
        self.entry, self.grids, self.plan = context.entry, work.grids, work.plan
        self.deadline, self.adapt_budget_s = context.deadline, work.adapt_budget_s
        grids = work.grids
        self.stop = threading.Event()
        self.ballots = [Ballot() for _ in grids.tests]
        self.jobs: dict[str, int] = {}  # engine job id -> version, queued or running
        self.pending: deque[tuple[int, int, np.ndarray]] = deque()
        self.left: dict[int, int] = {}  # version -> test inputs still unanswered
        self.failure: ApiError | None = None
        self.changed = asyncio.Event()
        self.adapt: dict[str, Any] | None = None
        self.adapt_s = 0.0
        self.steps_used = 0

    # ------------------------------------------------------------------------- lifecycle

    async def execute(self) -> None:
        try:
            if self.plan.mode == "adapted":
                await self._adapt()
            predicting = time.monotonic()
            await self._predict()
            self._complete(time.monotonic() - predicting)
        except _Ended:
            pass
        except ApiError as exc:
            self._fail(exc, {504: "timeout", 503: "rejected"}.get(exc.status, "error"))
        except Exception:
            log.exception("ARC request %s failed", self.context.job_id)
            self._fail(errors.internal(), "error")
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop fitting and drop every engine job of this run (idempotent, loop thread)."""
        self.stop.set()
        self.pending.clear()
        for job_id in list(self.jobs):
            self.entry.engine.cancel(job_id)
        self.jobs.clear()
        self.changed.set()

    def _check(self) -> None:
        """Raise when the run must stop: ended elsewhere, a failed job, past the deadline."""
        if self.sink.ended:
            raise _Ended
        if self.failure is not None:
            raise self.failure
        if time.monotonic() > self.deadline + _GRACE_S:
            raise errors.timeout("the deadline passed before every version answered")

    # ------------------------------------------------------------------------ adaptation

    async def _adapt(self) -> None:
        on_progress = self.bridge.wrap(self._adapt_progress)
        started = time.monotonic()
        adapted, cached = await self.adapter.adapt(self.entry, self.grids, self.plan.versions,
                                               self.adapt_budget_s, self.deadline, on_progress,
                                               self._stopped)
        self.adapt_s = 0.0 if cached else time.monotonic() - started
        self._check()
        self.plan.symmetries, self.plan.rows = adapted.symmetries, adapted.rows
        self.plan.versions = len(adapted.symmetries)
        self.adapt = {**adapted.report.to_dict(), "cached": cached}
        self._publish("arc.adapt", {"done": True, **self.adapt})

    def _stopped(self) -> bool:
        """Polled by the fitting thread: cancelled, or ended elsewhere (drain, deadline)."""
        return self.stop.is_set() or self.sink.ended

    def _adapt_progress(self, data: dict[str, Any]) -> None:
        self._publish("arc.adapt", {"done": False, **data})

    def _publish(self, name: str, data: dict[str, Any]) -> None:
        if not self.sink.ended:
            self.sink.publish(name, data)

    # ------------------------------------------------------------------------ prediction

    async def _predict(self) -> None:
        puzzles = self.plan.puzzles(self.grids)
        self.pending.extend(puzzles)
        self.left = dict.fromkeys(range(len(self.plan.symmetries)), len(self.grids.tests))
        while self.pending or self.jobs:
            self._check()
            blocked = self._fill()
            self.changed.clear()
            if blocked:
                self.room.clear()  # with _fill, in one step of the loop: no wake-up is lost
            await self._wait(blocked)
        self._check()

    async def _wait(self, blocked: bool) -> None:
        """Until one of ours answers, the job ends elsewhere, or (when the queue was full)
        any job of the engine finishes; at the latest when the run's time is up."""
        events = [self.changed, self.sink.done, *([self.room] if blocked else [])]
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED,
                               timeout=max(0.0, self.deadline + _GRACE_S - time.monotonic()))
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _fill(self) -> bool:
        """Submit pending predictions while fewer than `slots` of ours are in the engine; none
        once draining (the drain ends this job). True when the queue was full."""
        if self.draining():
            return False
        while self.pending and len(self.jobs) < self.entry.slots:
            version, test, canvas = self.pending[0]
            job = Job(puzzle=canvas, max_steps=self.plan.max_steps, halting=self.plan.halting,
                      deadline=self.deadline, **self.plan.job_fields(version),
                      on_done=self.bridge.wrap(partial(self._on_done, version, test)))
            try:
                self.entry.engine.submit(job)
            except QueueFull:
                return True  # other traffic holds the queue: retried when a job finishes
            self.pending.popleft()
            self.jobs[job.id] = version
        return False

    def _on_done(self, version: int, test: int, result: JobResult) -> None:
        """One prediction finished (loop thread)."""
        self.room.set()
        if self.jobs.pop(result.job_id, None) is None or self.sink.ended:
            return
        self.changed.set()
        if result.status not in ("solved", "unsolved") or result.answer is None:
            self.failure, _ = payloads.failure_error(result, self.retry_after_s)
            return
        self.steps_used = max(self.steps_used, result.steps_used)
        self.ballots[test].add_canvas(result.answer, self.plan.symmetries[version],
                                      result.q_halt)
        self.left[version] -= 1
        if self.left[version] == 0:
            done = sum(1 for count in self.left.values() if count == 0)
            self._publish("arc.progress", {"version": version, "completed": done,
                                           "versions": len(self.left)})

    # --------------------------------------------------------------------------- results

    def _complete(self, compute_s: float) -> None:
        answers = [self._answer(ballot) for ballot in self.ballots]
        total_s = time.monotonic() - self.context.started
        body = {
            "id": self.context.job_id, "object": "arc.result", "task": "arc",
            "model": self.entry.id,
            "status": "answered" if all(a["attempts"] for a in answers) else "unanswered",
            "mode": self.plan.mode, "task_id": self.plan.task_id,
            "versions": len(self.plan.symmetries), "steps_used": self.steps_used,
            "test": answers, "adapt": self.adapt,
            "timing": {"adapt_ms": _ms(self.adapt_s), "compute_ms": _ms(compute_s),
                       "total_ms": _ms(total_s)},
        }
        self.sink.complete(body)

    @staticmethod
    def _answer(ballot: Ballot) -> dict[str, Any]:
        ranked = ballot.ranked()
        return {"attempts": [{"grid": c.grid.tolist(), "votes": c.votes,
                              "confidence": round(c.confidence, 4)} for c in ranked[:ATTEMPTS]],
                "predictions": ballot.predictions,
                "vote_counts": [c.votes for c in ranked]}

    def _fail(self, error: ApiError, outcome: str) -> None:
        self.sink.fail(error, outcome)

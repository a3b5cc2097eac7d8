"""The runner interface: where admitted jobs run, chosen once when the app is created.

`SolveService` admits, records and answers; a `Runner` starts its models, says whether it is
ready and whether it has room, runs the jobs it is given and reports every event and ending to
the `Ledger`. `LocalRunner` (`app.runners.local`) runs them on engine threads in this process;
`BrokerRunner` (`app.runners.broker`) puts them on Redis streams for broker worker processes.
The service never asks which one it has. A job is one puzzle (`PuzzleWork`) or work of a kind a
task drives itself (`TaskWork`: ARC's adapt-then-vote), which both runners carry by its kind's
name and run through the same `app.task_runs.JobKind`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app import cache, payloads
from app.jobs import TrackedJob
from app.metrics import Metrics
from app.registry import ModelEntry
from app.settings import Settings
from trm_core.engine import Halting, SearchConfig

PUZZLE = "puzzle"  # the work kind of one puzzle; other kinds are the tasks' job kinds
WorkKind = str  # PUZZLE or a job kind's name


class RunnerFull(Exception):
    """The runner has no room for the job now (a 503 queue_full)."""


@dataclass(frozen=True)
class PuzzleWork:
    """One puzzle to solve, as admitted (options checked, cells parsed)."""

    cells: np.ndarray
    halting: Halting
    attempts: int
    latent_noise: float
    seed: int
    search: SearchConfig | None
    deadline: float  # monotonic

    @property
    def search_key(self) -> str:
        """The search options as part of a result-cache key (as the broker message spells
        them)."""
        if self.search is None:
            return f"0/1/0/{self.seed}"
        s = self.search
        return f"{s.budget_steps}/{s.attempts}/{s.round_steps}/{self.seed}"


@dataclass(frozen=True)
class TaskWork:
    """Work of a job kind a task supplies (`app.task_apis.JOB_KINDS`), which the runner hands
    to that kind without looking inside."""

    kind: str
    spec: Any  # the kind's description of the work (`JobKind.encode` puts it on the wire)
    deadline: float  # monotonic
    accepted: dict[str, Any] = field(default_factory=dict)  # extra `solve.accepted` fields


Work = PuzzleWork | TaskWork


def answers_from_cache(settings: Settings, entry: ModelEntry, record: TrackedJob) -> bool:
    """Whether the result cache may answer this job (either runner): the task can verify an
    answer, and nobody reads the job's steps (streams, jobs and `return_steps` want to watch
    the model work, which a cached answer skips)."""
    return (settings.cache_enabled and entry.task.can_verify and not record.keep_events
            and not record.return_steps)


def cache_key_of(entry: ModelEntry, record: TrackedJob, work: PuzzleWork) -> cache.CacheKey:
    """The result-cache key of a puzzle job (canonical form: call it off the event loop)."""
    return cache.cache_key(entry.task, work.cells, entry.checkpoint.sha256, record.max_steps,
                           work.halting, work.attempts, work.search_key)


def cached_result(metrics: Metrics, entry: ModelEntry, record: TrackedJob, work: PuzzleWork,
                  key: cache.CacheKey, raw: bytes | str | None) -> dict[str, Any] | None:
    """The completed result built from a cached symmetric twin's stored answer `raw`, or None
    (a miss); counts the lookup either way."""
    hit = None if raw is None else cache.decode(entry.task, work.cells, key, raw)
    metrics.cache_requests.labels(entry.task.name, "miss" if hit is None else "hit").inc()
    if hit is None:
        return None
    elapsed_ms = (time.monotonic() - record.started) * 1000
    return payloads.cached_body(record, entry.task, hit, work.cells, work.attempts, elapsed_ms,
                                entry.calibration)


class Runner(ABC):
    """Runs admitted jobs somewhere and reports them to the ledger."""

    started = False
    startup_error: str | None = None

    @abstractmethod
    async def start(self) -> None:
        """Make the models servable (off the event loop where slow); sets `started`, or
        `startup_error` when that failed."""

    @abstractmethod
    def readiness(self) -> dict[str, str]:
        """Each readiness check of this runner and "ok" or why it fails."""

    @abstractmethod
    def refusal(self, entry: ModelEntry, kind: WorkKind) -> str | None:
        """Why a new job of work kind `kind` (`PUZZLE` or a job kind's name) for `entry`
        cannot be taken now ("not_ready", "queue_full", "unsupported"), or None."""

    @abstractmethod
    def queue_position(self, entry: ModelEntry) -> int:
        """Jobs ahead of a new one for `entry` (the accepted event's `queue_position`)."""

    @abstractmethod
    def submit(self, record: TrackedJob, entry: ModelEntry, work: Work) -> None:
        """Start the job; raises `RunnerFull` when it has no room, `ValueError` when the
        engine refuses the job."""

    async def enqueued(self, record: TrackedJob) -> bool:
        """Wait until a submitted job is safely queued (findable by id); False when it could
        not be, and then it has already ended with its problem."""
        return True

    @abstractmethod
    async def cancel(self, record: TrackedJob, reason: str) -> bool:
        """Stop the job; False when it already finished. The caller ends the record."""

    async def find(self, job_id: str) -> TrackedJob | None:
        """A job this replica does not hold, made elsewhere (None: unknown)."""
        return None

    async def catch_up(self, record: TrackedJob) -> None:  # noqa: B027 (optional hook)
        """Bring an unfinished record up to date before it is read by id (a job ended on
        another replica ends here too)."""

    @abstractmethod
    async def drain(self) -> None:
        """Let jobs in flight finish within the shutdown timeout, then stop; the service fails
        whatever is left."""

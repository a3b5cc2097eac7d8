"""Job kinds a task drives itself: work that is not one puzzle but many engine jobs and events of
its own (ARC's adapt-then-vote), run the same way by the local runner and by a broker worker.

A task supplies a `JobKind` (registered in `app.task_jobs.JOB_KINDS`): it puts its work on the
wire (`encode` / `decode`) and starts a `TaskRun` for a `RunContext`. The context is what the
host injects: the model entry whose engine the run feeds, a bridge onto the event loop the run
lives on, and a `RunSink` where its events and its ending go (the ledger in this process, the
job's Redis stream on a worker). Runs execute on an asyncio loop; engine and fitting-thread
callbacks reach it through the bridge. Boundaries: no FastAPI, no Redis.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.engine_thread import LoopBridge
from app.errors import ApiError
from app.registry import ModelEntry
from app.settings import Settings


class RunSink(ABC):
    """Where a task run reports: its events, then exactly one ending (unless it ended
    elsewhere first: a cancel, a drain)."""

    done: asyncio.Event  # set when the job ended, here or elsewhere

    @property
    @abstractmethod
    def ended(self) -> bool:
        """Whether the job already ended (the run then stops without another word)."""

    @abstractmethod
    def publish(self, name: str, data: dict[str, Any]) -> None:
        """A non-terminal event of the job."""

    @abstractmethod
    def complete(self, body: dict[str, Any]) -> None:
        """The job answered: `body` is its result (the `solve.completed` data)."""

    @abstractmethod
    def fail(self, error: ApiError, outcome: str) -> None:
        """The job failed with `error` (its metrics `outcome`: timeout, rejected, error)."""


@dataclass
class RunContext:
    """What a host gives a task run: the job, the model and the ways to report and wait."""

    job_id: str
    started: float  # monotonic: when the job was admitted (the result's total_ms counts from it)
    deadline: float  # monotonic
    entry: ModelEntry
    sink: RunSink
    bridge: LoopBridge  # onto the loop the run executes on
    draining: Callable[[], bool]  # True once the host stops taking new engine jobs
    room: asyncio.Event  # set whenever a job of the entry's engine finishes


class TaskRun(Protocol):
    """One job of a task's own kind in flight."""

    async def execute(self) -> None:
        """Drive the job to its ending (reported to the sink), or until it ended elsewhere."""

    def cancel(self) -> None:
        """Stop now, dropping every engine job of the run (idempotent; the loop's thread)."""


class JobKind(ABC):
    """A task's own kind of work, one instance per host (it may keep state there, such as
    ARC's adapted rows)."""

    name: str

    @abstractmethod
    def encode(self, spec: Any) -> str:
        """The work as text for a queue message."""

    @abstractmethod
    def decode(self, text: str) -> Any:
        """The inverse of `encode`."""

    @abstractmethod
    def start(self, context: RunContext, spec: Any) -> TaskRun:
        """A run of `spec` (not yet executing)."""


JobKindFactory = Callable[[Settings], JobKind]

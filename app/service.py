"""The solve service: admission, records, waiting, cancelling, streaming, readiness and drain.
Framework-free: routes translate HTTP into these calls and `ApiError`s back into HTTP. Where a
job runs is the `Runner`'s business (`app.runners`), chosen once when the app is created; the
service never asks which one it has.

Admission order matters for clients and metrics: unknown task (404), draining or not ready (503),
unknown model (404), the runner's refusal (503, or 501 for work it cannot run), out-of-range
options and malformed puzzles (422), then the queue (503 when full). Every kind of work (a
task's own job kind too: its service admits through `admission` and hands its `TaskWork` to
`run`); everything is checked before the job exists, so a stream only starts for a job that was
accepted. Tasks with an API of their own keep their per-service state in `extensions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, NoReturn

from app import errors, payloads
from app.errors import ApiError
from app.jobs import Event, JobStore, RecordKind, TrackedJob
from app.ledger import ENDPOINT_OF, Ledger
from app.metrics import Metrics
from app.registry import ModelEntry, ModelRegistry, UnknownModel
from app.runners.base import PUZZLE, PuzzleWork, Runner, RunnerFull, Work, WorkKind
from app.schemas import SolveRequest
from app.settings import Settings
from trm_core.tasks.base import PuzzleError

log = logging.getLogger(__name__)
# A sync wait outlives the engine deadline by this much before the service gives up on the
# runner itself, so a lost callback can never hang a client forever.
_WAIT_GRACE_S = 5.0


class SolveService:
    """Admits jobs, records them and answers for them; one per app instance."""

    def __init__(self, settings: Settings, registry: ModelRegistry, store: JobStore,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.metrics = metrics
        self.ledger = Ledger(settings, registry, store)
        # a task's own per-service objects (its admission of requests that are not puzzles),
        # by task name, made on first use by the task's code
        self.extensions: dict[str, Any] = {}
        self.runner: Runner | None = None  # set once by `use`, before start
        self.draining = False
        self._drain_task: asyncio.Task[None] | None = None
        self._cancels: set[asyncio.Task[bool]] = set()

    def use(self, runner: Runner) -> None:
        """The runner every job of this service runs on (set once, when the app is made)."""
        assert self.runner is None, "the runner is chosen once"
        self.runner = runner

    @property
    def _runner(self) -> Runner:
        assert self.runner is not None, "no runner chosen"
        return self.runner

    # --------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start the runner (models load off the event loop, so /livez answers meanwhile)."""
        if not self.draining:
            await self._runner.start()

    @property
    def started(self) -> bool:
        return self._runner.started

    @property
    def startup_error(self) -> str | None:
        return self._runner.startup_error

    def readiness(self) -> dict[str, str]:
        """Each readiness check and "ok" or why it fails."""
        return {**self._runner.readiness(),
                "not_draining": "draining" if self.draining else "ok"}

    @property
    def ready(self) -> bool:
        return all(state == "ok" for state in self.readiness().values())

    def begin_drain(self) -> asyncio.Task[None]:
        """Stop admitting and start draining (idempotent); the task ends when the runner
        stopped."""
        if self._drain_task is None:
            self.draining = True
            log.info("draining: %d job(s) in flight", len(self.ledger.inflight))
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())
        return self._drain_task

    async def drain(self) -> None:
        await self.begin_drain()

    async def _drain(self) -> None:
        """Let in-flight jobs finish within the shutdown timeout (the runner's drain), fail
        the rest."""
        await self._runner.drain()
        self.ledger.fail_inflight()
        log.info("drained")

    # --------------------------------------------------------------------------- admission

    def admission(self, task_name: str, ref: str | None, endpoint: str,
                  kind: WorkKind = PUZZLE) -> ModelEntry:
        """The model any new request (a puzzle, or work of a task's job kind) runs on, past
        the checks all pass; the caller then validates, and refuses with
        `reject(..., "queue_full")` when its kind of work has no room."""
        self.registry.require_task(task_name)
        if self.draining or not self.started:
            self.reject(task_name, ref, endpoint, "draining" if self.draining else "not_ready")
        entry = self._resolve(task_name, ref)
        refusal = self._runner.refusal(entry, kind)
        if refusal == "unsupported":
            raise ApiError(501, "not-implemented", f"{task_name} work is not served by this "
                           "deployment's runner; run the service without a broker for it")
        if refusal is not None:
            self.reject(task_name, ref, endpoint, refusal)
        return entry

    def admit(self, task_name: str, request: SolveRequest, *, kind: RecordKind,
              request_id: str, keep_events: bool) -> TrackedJob:
        """Validate, parse and submit one puzzle; raises `ApiError` for every refusal."""
        endpoint = ENDPOINT_OF[kind]
        entry = self.admission(task_name, request.model, endpoint)
        try:
            max_steps, attempts = payloads.check_options(
                request, entry.id, entry.max_steps, min(self.settings.max_attempts, entry.slots))
            search = payloads.search_config(request, self.settings, entry.slots,
                                            entry.task.can_verify)
            cells = entry.task.parse(request.raw_puzzle)
        except ApiError:
            entry.metrics.finished(endpoint, "invalid")
            raise
        except PuzzleError as exc:
            entry.metrics.finished(endpoint, "invalid")
            raise payloads.puzzle_error(exc, request) from None
        record = self.store.create(kind, task_name, entry.id, max_steps, request_id,
                                   keep_events=keep_events, return_steps=request.return_steps)
        work = PuzzleWork(cells, request.halting_mode, attempts, float(request.latent_noise),
                          request.seed or 0, search, self.deadline(kind, request.timeout_ms))
        self.run(record, entry, work)
        return record

    def run(self, record: TrackedJob, entry: ModelEntry, work: Work) -> None:
        """Hand an admitted record to the runner; a refusal forgets it and raises."""
        endpoint = ENDPOINT_OF[record.kind]
        try:
            self._runner.submit(record, entry, work)
        except RunnerFull:
            self.store.forget(record)
            self.reject(record.task, record.model, endpoint, "queue_full")
        except ValueError as exc:
            self.store.forget(record)
            entry.metrics.finished(endpoint, "invalid")
            raise errors.invalid(str(exc), []) from None

    def _resolve(self, task: str, ref: str | None) -> ModelEntry:
        try:
            return self.registry.resolve(task, ref)
        except UnknownModel as exc:
            if not exc.available and ref is None:
                raise errors.not_found("model", f"no model is loaded for task {task!r}",
                                       available=[]) from None
            raise errors.not_found(
                "model", f"unknown model {exc.ref!r} for task {task!r}; available: "
                f"{', '.join(exc.available) or 'none'}", available=exc.available) from None

    def reject(self, task: str, ref: str | None, endpoint: str, reason: str) -> NoReturn:
        """Count and raise a 503 admission refusal."""
        self.metrics.rejected(task, reason)
        with contextlib.suppress(UnknownModel):
            self.registry.resolve(task, ref).metrics.finished(endpoint, "rejected")
        detail = {"draining": "the service is shutting down",
                  "not_ready": "the service is not ready yet",
                  "queue_full": "the queue is full"}[reason]
        raise errors.unavailable(reason, f"{detail}; retry later", self.settings.retry_after_s)

    def deadline(self, kind: RecordKind, timeout_ms: int | None) -> float:
        """The job's monotonic deadline; a client's `timeout_ms` may only shorten the
        server's."""
        limit = self.settings.job_timeout_s if kind == "job" else self.settings.request_timeout_s
        seconds = limit if timeout_ms is None else min(limit, timeout_ms / 1000)
        return time.monotonic() + seconds

    # ------------------------------------------------------------------- waiting and jobs

    async def enqueued(self, record: TrackedJob) -> None:
        """Wait until a new job is safely queued; one that could not get there was never
        queued, so it is forgotten and refused (its problem)."""
        if not await self._runner.enqueued(record):
            self.store.forget(record)
            assert record.error is not None, "a job that was not queued has failed"
            raise ApiError.from_problem(record.error)

    async def wait(self, record: TrackedJob, client_gone: Awaitable[None]) -> dict[str, Any]:
        """The result of a sync solve; raises its problem, or a 499 when the client left."""
        done = asyncio.ensure_future(record.done.wait())
        gone = asyncio.ensure_future(client_gone)
        budget = self.settings.request_timeout_s + _WAIT_GRACE_S
        try:
            await asyncio.wait({done, gone}, timeout=budget,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            done.cancel()
        if not record.terminal:
            if gone.done() and not gone.cancelled():
                await self.cancel(record, "client disconnected")
                raise errors.client_gone()
            log.error("no answer from the runner for %s within %.0f s", record.id, budget)
            await self.cancel(record, "no answer from the engine")
            raise errors.timeout("no answer from the engine in time")
        if record.result is not None:
            return record.result
        if record.error is not None:
            raise ApiError.from_problem(record.error)
        raise errors.client_gone()

    async def cancel(self, record: TrackedJob, reason: str) -> bool:
        """Cancel a job now (an engine frees its slot at the next step boundary); False when
        it already finished."""
        if record.terminal or not await self._runner.cancel(record, reason):
            return False
        self.ledger.cancel(record, reason)
        return True

    def _cancel_later(self, record: TrackedJob, reason: str) -> None:
        """`cancel` for callers that cannot wait (a stream closing in a cancelled task)."""
        task = asyncio.get_running_loop().create_task(self.cancel(record, reason),
                                                      name=f"cancel:{record.id}")
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def find_job(self, job_id: str) -> TrackedJob:
        """A job by id, held here or (in broker mode) made on another replica; 404 otherwise."""
        record = self.store.get(job_id)
        if record is not None and not record.terminal:
            await self._runner.catch_up(record)
        elif record is None:
            record = await self._runner.find(job_id)
        if record is None:
            raise errors.not_found("job", f"unknown job {job_id!r} (finished jobs are kept up to "
                                   f"{self.settings.job_ttl_s:.0f} s)")
        return record

    async def cancel_job(self, job_id: str) -> None:
        """DELETE /v1/jobs/{id}: 204, or 409 when the job already finished."""
        record = await self.find_job(job_id)
        if not await self.cancel(record, "cancelled by the client"):
            raise errors.conflict(f"job {job_id} already finished ({record.status})")

    async def events(self, record: TrackedJob, after: int, *, cancel_on_close: bool
                     ) -> AsyncIterator[Event | None]:
        """The job's events after id `after`, then live ones until the terminal event; None
        marks a keep-alive. Closing early cancels the job when `cancel_on_close`."""
        endpoint = ENDPOINT_OF[record.kind]
        replay, queue = self.store.subscribe(record, after)
        self.metrics.stream_opened(endpoint)
        try:
            for event in replay:
                yield event
            while queue is not None:
                try:
                    async with asyncio.timeout(self.settings.sse_ping_s):
                        live = await queue.get()
                except TimeoutError:
                    yield None
                    continue
                if live is None:
                    return
                if live.id <= after:
                    continue  # a job adopted from another replica replays from its start
                yield live
        finally:
            # Synchronous on purpose: this runs inside a cancelled task on disconnect.
            self.store.unsubscribe(record, queue)
            self.metrics.stream_closed(endpoint)
            if cancel_on_close and not record.terminal:
                self._cancel_later(record, "client disconnected")

"""The solve service: admission, engine callbacks, waiting, cancelling, streaming, readiness and
drain. Framework-free: routes translate HTTP into these calls and `ApiError`s back into HTTP.

Admission order matters for clients and metrics: unknown task (404), draining or not ready (503),
unknown model (404), out-of-range options and malformed puzzles (422), then the queue (503 when
full). Every kind of work (ARC too) passes `admission`; everything is checked before the job
exists, so a stream only starts for a job that was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

from app import broker, errors, payloads
from app.arc_service import ArcService
from app.errors import ApiError
from app.jobs import Event, JobRecord, JobState, JobStore, RecordKind
from app.metrics import Metrics
from app.registry import ModelEntry, ModelRegistry, UnknownModel
from app.schemas import SolveRequest
from app.settings import Settings
from app.worker import LoopBridge
from trm_core.engine import Job, JobResult, QueueFull, SearchConfig, StepUpdate
from trm_core.tasks.base import PuzzleError

if TYPE_CHECKING:  # broker mode only; the embedded default never imports redis
    from app.remote import RemoteJobs

log = logging.getLogger(__name__)
ENDPOINT_OF: dict[RecordKind, str] = {"solve": "solve", "job": "jobs", "mcp": "mcp"}
# A sync wait outlives the engine deadline by this much before the service gives up on the
# engine itself, so a lost callback can never hang a client forever.
_WAIT_GRACE_S = 5.0


class SolveService:
    """Owns the models, the job store and the lifecycle; one per app instance."""

    def __init__(self, settings: Settings, registry: ModelRegistry, store: JobStore,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.metrics = metrics
        self.started = False
        self.draining = False
        self.startup_error: str | None = None
        self._bridge: LoopBridge | None = None
        self._inflight: dict[str, JobRecord] = {}
        self._drain_task: asyncio.Task[None] | None = None
        # Records that are no single engine job (ARC requests) cancel through their hook.
        self.cancel_hooks: dict[str, Callable[[], None]] = {}
        self.arc = ArcService(self)
        # Broker mode (TRM_REDIS_URL set): jobs go to Redis workers instead of local engines.
        self.remote: RemoteJobs | None = None
        self._watcher: asyncio.Task[None] | None = None

    # --------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Load, warm up and start the workers, off the event loop so /livez answers meanwhile."""
        self._bridge = LoopBridge(asyncio.get_running_loop())
        if self.remote is not None:
            await self._start_remote(self.remote)
            return
        try:
            await asyncio.to_thread(self.registry.load)
            await asyncio.to_thread(self.registry.warmup)
        except Exception as exc:
            log.exception("start-up failed")
            self.startup_error = f"{type(exc).__name__}: {exc}"
            return
        if self.draining:
            return
        self.registry.start_workers()
        self.started = True
        if self.registry.entries:
            log.info("ready: %s", ", ".join(self.registry.entries))
        else:
            log.warning("serving NO MODELS: not ready; /readyz says why")

    async def _start_remote(self, remote: RemoteJobs) -> None:
        """Broker mode: read the model cards (engines are built, never started or warmed: the
        workers run them), then watch Redis and the workers."""
        try:
            await asyncio.to_thread(self.registry.load)
        except Exception as exc:
            log.exception("start-up failed")
            self.startup_error = f"{type(exc).__name__}: {exc}"
            return
        for entry in self.registry.entries.values():
            entry.warmed = True
        remote.track(list(self.registry.entries.values()))
        self._watcher = asyncio.get_running_loop().create_task(remote.watch(), name="trm-redis")
        self.started = True
        log.info("broker mode ready: %s", ", ".join(self.registry.entries) or "no models")

    def readiness(self) -> dict[str, str]:
        """Each readiness check and "ok" or why it fails."""
        reg = self.registry
        if self.remote is not None and self.started:
            return {"models_loaded": reg.check(),
                    "redis": self.remote.error or "ok",
                    "workers_alive": self.remote.workers_status(),
                    "not_draining": "draining" if self.draining else "ok"}
        if self.startup_error:
            loaded = f"start-up failed: {self.startup_error}"
        else:
            loaded = reg.check() if reg.loaded else "loading"
        dead = reg.dead_workers() if self.started else []
        return {
            "models_loaded": loaded,
            "warmed_up": "ok" if reg.warmed else "pending",
            "workers_alive": ("ok" if self.started and not dead
                              else f"stopped: {', '.join(dead)}" if dead else "not started"),
            "not_draining": "draining" if self.draining else "ok",
        }

    @property
    def ready(self) -> bool:
        return all(state == "ok" for state in self.readiness().values())

    def begin_drain(self) -> asyncio.Task[None]:
        """Stop admitting and start draining (idempotent); the task ends when workers stopped."""
        if self._drain_task is None:
            self.draining = True
            log.info("draining: %d job(s) in flight", len(self._inflight))
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())
        return self._drain_task

    async def drain(self) -> None:
        await self.begin_drain()

    async def _drain(self) -> None:
        """Let in-flight jobs finish within the shutdown timeout, fail the rest, stop workers.

        `Engine.drain` ticks on its caller's thread and an engine has one owner thread at a
        time, so each worker thread stops first and a pool thread takes over its engine."""
        if self.remote is not None:
            await self._drain_remote(self.remote)
            return
        entries = list(self.registry.entries.values()) if self.started else []
        await asyncio.to_thread(self.registry.stop_workers, 10.0)
        await asyncio.gather(*(asyncio.to_thread(self._drain_engine, e) for e in entries))
        await asyncio.sleep(0)  # deliver the callbacks the engines scheduled while draining
        for record in list(self._inflight.values()):
            self._fail(record, payloads.shutdown_error(self.settings.retry_after_s), "rejected")
        log.info("drained")

    async def _drain_remote(self, remote: RemoteJobs) -> None:
        """Broker mode: wait for this replica's in-flight requests; their jobs keep running on
        the workers, so only the waiting clients are told about the shutdown."""
        end = time.monotonic() + self.settings.shutdown_timeout_s
        while self._inflight and time.monotonic() < end:
            await asyncio.sleep(0.05)
        for record in list(self._inflight.values()):
            self._fail(record, payloads.shutdown_error(self.settings.retry_after_s), "rejected")
        if self._watcher is not None:
            self._watcher.cancel()
        await remote.close()
        log.info("drained")

    def _drain_engine(self, entry: ModelEntry) -> None:
        """Pool thread: finish what fits in the shutdown timeout, then fail the rest."""
        timeout_s = self.settings.shutdown_timeout_s
        if not entry.engine.drain(timeout_s):
            log.warning("%s did not drain within %.1f s; failing its jobs", entry.id, timeout_s)
            entry.engine.fail_all(payloads.SHUTDOWN_REASON)

    # --------------------------------------------------------------------------- admission

    def admission(self, task_name: str, ref: str | None, endpoint: str) -> ModelEntry:
        """The model any new request (puzzle or ARC task) runs on, past the checks all pass;
        the caller then validates, and refuses with `_reject(..., "queue_full")` when its kind
        of work has no room."""
        self.registry.require_task(task_name)
        if self.draining or not self.started:
            self._reject(task_name, ref, endpoint, "draining" if self.draining else "not_ready")
        entry = self._resolve(task_name, ref)
        if self.remote is not None:  # jobs admitted and unfinished across the cluster
            refusal = self.remote.refusal(entry, self.settings.max_queue_size or entry.max_queue)
            if refusal is not None:
                self._reject(task_name, ref, endpoint, refusal)
        elif not entry.worker.alive:
            self._reject(task_name, ref, endpoint, "not_ready")
        return entry

    def admit(self, task_name: str, request: SolveRequest, *, kind: RecordKind,
              request_id: str, keep_events: bool) -> JobRecord:
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
        self._submit(entry, record, request, cells, attempts, search)
        return record

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

    def _reject(self, task: str, ref: str | None, endpoint: str, reason: str) -> NoReturn:
        """Count and raise a 503 admission refusal."""
        self.metrics.rejected(task, reason)
        with contextlib.suppress(UnknownModel):
            self.registry.resolve(task, ref).metrics.finished(endpoint, "rejected")
        detail = {"draining": "the service is shutting down",
                  "not_ready": "the service is not ready yet",
                  "queue_full": "the queue is full"}[reason]
        raise errors.unavailable(reason, f"{detail}; retry later", self.settings.retry_after_s)

    def _deadline(self, kind: RecordKind, timeout_ms: int | None) -> float:
        """The engine deadline; a client's `timeout_ms` may only shorten the server's."""
        limit = self.settings.job_timeout_s if kind == "job" else self.settings.request_timeout_s
        seconds = limit if timeout_ms is None else min(limit, timeout_ms / 1000)
        return time.monotonic() + seconds

    def _submit(self, entry: ModelEntry, record: JobRecord, request: SolveRequest,
                cells: Any, attempts: int, search: SearchConfig | None) -> None:
        assert self._bridge is not None, "submit before start"
        if self.remote is not None:
            self._submit_remote(self.remote, entry, record, request, cells, attempts, search)
            return
        on_step = partial(self._on_step, record, entry)
        # A plain sync solve only needs its first step (time to first step); streams, jobs and
        # trajectories need every one.
        wants_all = record.keep_events or record.return_steps
        job = Job(puzzle=cells, max_steps=record.max_steps, halting=request.halting_mode,
                  attempts=attempts, latent_noise=request.latent_noise,
                  seed=request.seed or 0, search=search,
                  deadline=self._deadline(record.kind, request.timeout_ms),
                  on_step=(self._bridge.wrap if wants_all else self._bridge.wrap_first)(on_step),
                  on_done=self._bridge.wrap(partial(self._on_done, record, entry, cells)),
                  id=record.id)
        endpoint = ENDPOINT_OF[record.kind]
        try:
            entry.engine.submit(job)
        except QueueFull:
            self.store.forget(record)
            self._reject(record.task, record.model, endpoint, "queue_full")
        except ValueError as exc:
            self.store.forget(record)
            entry.metrics.finished(endpoint, "invalid")
            raise errors.invalid(str(exc), []) from None
        self._inflight[record.id] = record
        self.store.publish(record, "solve.accepted",
                           payloads.accepted_data(record, entry.engine.queue_depth))

    def _submit_remote(self, remote: RemoteJobs, entry: ModelEntry, record: JobRecord,
                       request: SolveRequest, cells: Any, attempts: int,
                       search: SearchConfig | None) -> None:
        seconds = self._deadline(record.kind, request.timeout_ms) - time.monotonic()
        message = broker.JobMessage(
            record.id, record.kind, record.task, record.model, record.request_id,
            [int(v) for v in cells], record.max_steps, request.halting_mode, attempts,
            float(request.latent_noise), time.time() + seconds,
            "all" if record.keep_events else "none", bool(record.return_steps),
            budget_steps=0 if search is None else search.budget_steps,
            search_attempts=1 if search is None else search.attempts,
            search_round_steps=0 if search is None else search.round_steps,
            seed=request.seed or 0)
        self._inflight[record.id] = record
        remote.submit(record, entry, message, cells)

    def _on_remote_event(self, record: JobRecord, name: str, data: dict[str, Any],
                         event_id: int | None) -> None:
        """An event read from the job's Redis stream, handled like the engine's callbacks."""
        if record.terminal:
            self._inflight.pop(record.id, None)
            return
        if name == "solve.completed":
            timing = data.get("timing") or {}
            self._finish(record, "succeeded", str(data.get("status", "unsolved")), name, data,
                         result=data, queue_s=float(timing.get("queue_ms", 0.0)) / 1000,
                         steps=data.get("steps_used"))
        elif name == "solve.failed":
            outcome = {504: "timeout", 503: "rejected"}.get(int(data.get("status", 500)), "error")
            self._finish(record, "failed", outcome, name, data, error=data)
        elif name == "solve.cancelled":
            self._cancelled(record, str(data.get("reason", "cancelled")))
        else:
            if name == "solve.step" and record.first_step_mono is None:
                record.first_step_mono = time.monotonic()
                record.status = "running"
                entry = self.registry.entries.get(record.model)
                if entry is not None:
                    entry.metrics.first_step(float(data.get("elapsed_ms", 0.0)) / 1000)
            self.store.publish(record, name, data, event_id=event_id)

    # ---------------------------------------------------------------- engine callbacks (loop)

    def _on_step(self, record: JobRecord, entry: ModelEntry, update: StepUpdate) -> None:
        """One supervision step of a job; step events are only built when someone can read
        them (streams, jobs), which keeps plain sync solves cheap."""
        if record.terminal:
            return
        if record.first_step_mono is None:
            record.first_step_mono = time.monotonic()
            record.status = "running"
            entry.metrics.first_step(update.elapsed_ms / 1000)
        if record.return_steps:
            record.trajectory.append(payloads.trajectory_entry(entry.task, update))
        if record.keep_events or record.subscribers:
            self.store.publish(record, "solve.step", payloads.step_data(entry.task, update),
                               event_id=update.step)

    def _on_done(self, record: JobRecord, entry: ModelEntry, puzzle: Any,
                 result: JobResult) -> None:
        """The engine's final word; ignored when the service already ended the record (a
        cancel it reported to the client before the engine got to it)."""
        if record.terminal:
            self._inflight.pop(record.id, None)
            return
        if result.status == "cancelled" and result.error != payloads.SHUTDOWN_REASON:
            self._cancelled(record, result.error or "cancelled")
            return
        if result.status in ("solved", "unsolved"):
            try:
                body = payloads.result_body(record, entry.task, result, puzzle,
                                            entry.calibration)
            except Exception:
                log.exception("could not format the result of %s", record.id)
                self._fail(record, errors.internal(), "error")
                return
            self._finish(record, "succeeded", result.status, "solve.completed", body,
                         result=body, queue_s=result.queue_ms / 1000, steps=result.steps_used)
            return
        error, outcome = payloads.failure_error(result, self.settings.retry_after_s)
        if outcome == "error":
            log.error("job %s (request %s) failed: %s", record.id, record.request_id,
                      result.error)
        self._fail(record, error, outcome, steps=result.steps_used)

    def _finish(self, record: JobRecord, state: JobState, outcome: str, name: str,
                data: dict[str, Any], *, result: dict[str, Any] | None = None,
                error: dict[str, Any] | None = None, queue_s: float | None = None,
                steps: int | None = None) -> None:
        """The single place a record ends: state, terminal event, metrics."""
        self._inflight.pop(record.id, None)
        if not self.store.finish(record, state, outcome, name, data, result=result, error=error):
            return
        entry = self.registry.entries.get(record.model)
        if entry is not None:
            entry.metrics.finished(ENDPOINT_OF[record.kind], outcome,
                                   time.monotonic() - record.started, queue_s, steps)

    def _fail(self, record: JobRecord, error: ApiError, outcome: str,
              steps: int | None = None) -> None:
        body = error.to_problem(record.request_id, self.settings.problem_base_uri)
        self._finish(record, "failed", outcome, "solve.failed", body, error=body, steps=steps)

    def _cancelled(self, record: JobRecord, reason: str) -> None:
        self._finish(record, "cancelled", "cancelled", "solve.cancelled",
                     payloads.cancelled_data(record, reason))

    # ------------------------------------------------------------------- waiting and jobs

    async def wait(self, record: JobRecord, client_gone: Awaitable[None]) -> dict[str, Any]:
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
                self.cancel(record, "client disconnected")
                raise errors.client_gone()
            log.error("no answer from the engine for %s within %.0f s", record.id, budget)
            self.cancel(record, "no answer from the engine")
            raise errors.timeout("no answer from the engine in time")
        if record.result is not None:
            return record.result
        if record.error is not None:
            raise ApiError.from_problem(record.error)
        raise errors.client_gone()

    def cancel(self, record: JobRecord, reason: str) -> bool:
        """Cancel a running job now (its slot frees at the engine's next step); False when it
        already finished."""
        if record.terminal:
            return False
        hook = self.cancel_hooks.pop(record.id, None)
        if hook is not None:
            hook()
            self._cancelled(record, reason)
            return True
        if self.remote is not None:
            self.remote.cancel_soon(record, reason)
            self._cancelled(record, reason)
            return True
        entry = self.registry.entries.get(record.model)
        if entry is not None and not entry.engine.cancel(record.id):
            return False  # the engine finished it; its result is on its way to the loop
        self._cancelled(record, reason)
        return True

    def job(self, job_id: str) -> JobRecord:
        record = self.store.get(job_id)
        if record is None:
            raise errors.not_found("job", f"unknown job {job_id!r} (finished jobs are kept up to "
                                   f"{self.settings.job_ttl_s:.0f} s)")
        return record

    async def enqueued(self, record: JobRecord) -> None:
        """Broker mode: wait until the job reached Redis; one that could not get there was
        never queued, so it is forgotten and refused (its 503). At once when embedded."""
        if self.remote is not None and not await self.remote.wait_enqueued(record.id):
            self.store.forget(record)
            assert record.error is not None, "a job that was not queued has failed"
            raise ApiError.from_problem(record.error)

    async def find_job(self, job_id: str) -> JobRecord:
        """A job by id; in broker mode also one made on another replica (followed from Redis)."""
        record = self.store.get(job_id)
        if record is not None or self.remote is None:
            return self.job(job_id)
        meta = await self.remote.metadata(job_id)
        if meta is None:
            return self.job(job_id)  # raises the 404
        record = JobRecord(job_id, "job", meta["task"], meta["model"], int(meta["max_steps"]),
                           meta.get("request_id", ""), keep_events=True,
                           created_at=float(meta.get("created_at", time.time())))
        self.store.add(record)
        await self.remote.adopt(record)
        return record

    async def cancel_job_anywhere(self, job_id: str) -> None:
        """DELETE /v1/jobs/{id}: 204, or 409 when the job already finished (on any replica)."""
        record = await self.find_job(job_id)
        if self.remote is None:
            self.cancel_job(job_id)
            return
        if record.terminal or not await self.remote.cancel(record, "cancelled by the client"):
            raise errors.conflict(f"job {job_id} already finished ({record.status})")
        self._cancelled(record, "cancelled by the client")

    def cancel_job(self, job_id: str) -> None:
        record = self.job(job_id)
        if not self.cancel(record, "cancelled by the client"):
            raise errors.conflict(f"job {job_id} already finished ({record.status})")

    async def events(self, record: JobRecord, after: int, *, cancel_on_close: bool
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
                self.cancel(record, "client disconnected")


"""`LocalRunner`: jobs run on this process's engines, one engine thread per model.

Engine callbacks fire on the engine threads; the `LoopBridge` hands each to the event loop,
where it becomes a ledger event. With the result cache on, a puzzle whose task can verify
answers is first looked up (its canonical form is computed on a pool thread) in the bounded
in-process `MemoryAnswers`; a verified answer is stored when its job finishes. Work of a task's
own job kind (`TaskWork`: ARC's adapt-then-vote) runs as a task on the loop through its
`JobKind`, feeding the same engines and reporting to the ledger through a `LedgerSink`. Drain
stops each engine thread and lets a pool thread finish its jobs within the shutdown timeout (an
engine has one owner thread at a time).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from functools import partial
from typing import Any

from app import cache, errors, payloads
from app.engine_thread import LoopBridge
from app.errors import ApiError
from app.jobs import TrackedJob
from app.ledger import Ledger
from app.metrics import Metrics
from app.registry import ModelEntry, ModelRegistry
from app.runners.base import (
    PUZZLE,
    PuzzleWork,
    Runner,
    RunnerFull,
    TaskWork,
    Work,
    WorkKind,
    answers_from_cache,
    cache_key_of,
    cached_result,
)
from app.settings import Settings
from app.task_jobs import job_kinds
from app.task_runs import RunContext, RunSink, TaskRun
from trm_core.engine import Job, JobResult, QueueFull, StepUpdate

log = logging.getLogger(__name__)


class LocalRunner(Runner):
    """Runs jobs on the registry's engines in this process."""

    def __init__(self, settings: Settings, registry: ModelRegistry, ledger: Ledger,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.registry = registry
        self.ledger = ledger
        self.metrics = metrics
        self.kinds = job_kinds(settings)
        self.draining = False
        self.answers = (cache.MemoryAnswers(settings.cache_max_entries, settings.cache_ttl_s)
                        if settings.cache_enabled else None)
        self._bridge: LoopBridge | None = None
        self._task_runs: dict[str, TaskRun] = {}
        self._looking_up: dict[str, int] = Counter()  # per model: jobs in a cache lookup
        self._lookups: dict[str, asyncio.Task[None]] = {}
        # per model: set when any of its engine jobs finishes (task runs wait on it, not poll)
        self._room: dict[str, asyncio.Event] = {}
        self._remembering: set[asyncio.Task[None]] = set()

    # --------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Load, warm up and start the engine threads, off the event loop."""
        self._bridge = LoopBridge(asyncio.get_running_loop())
        try:
            await asyncio.to_thread(self.registry.load)
            await asyncio.to_thread(self.registry.warmup)
        except Exception as exc:
            log.exception("start-up failed")
            self.startup_error = f"{type(exc).__name__}: {exc}"
            return
        if self.draining:
            return
        self.registry.start_engines()
        self.started = True
        if self.registry.entries:
            log.info("ready: %s", ", ".join(self.registry.entries))
        else:
            log.warning("serving NO MODELS: not ready; /readyz says why")

    def readiness(self) -> dict[str, str]:
        reg = self.registry
        if self.startup_error:
            loaded = f"start-up failed: {self.startup_error}"
        else:
            loaded = reg.check() if reg.loaded else "loading"
        dead = reg.dead_engines() if self.started else []
        return {
            "models_loaded": loaded,
            "warmed_up": "ok" if reg.warmed else "pending",
            "workers_alive": ("ok" if self.started and not dead
                              else f"stopped: {', '.join(dead)}" if dead else "not started"),
        }

    def refusal(self, entry: ModelEntry, kind: WorkKind) -> str | None:
        if kind != PUZZLE and kind not in self.kinds:
            return "unsupported"
        return None if entry.thread.alive else "not_ready"

    def queue_position(self, entry: ModelEntry) -> int:
        return entry.engine.queue_depth

    async def drain(self) -> None:
        self.draining = True
        entries = list(self.registry.entries.values()) if self.started else []
        await asyncio.to_thread(self.registry.stop_engines, 10.0)
        await asyncio.gather(*(asyncio.to_thread(self._drain_engine, e) for e in entries))
        await asyncio.sleep(0)  # deliver the callbacks the engines scheduled while draining

    def _drain_engine(self, entry: ModelEntry) -> None:
        """Pool thread: finish what fits in the shutdown timeout, then fail the rest."""
        timeout_s = self.settings.shutdown_timeout_s
        if not entry.engine.drain(timeout_s):
            log.warning("%s did not drain within %.1f s; failing its jobs", entry.id, timeout_s)
            entry.engine.fail_all(payloads.SHUTDOWN_REASON)

    # ---------------------------------------------------------------------------- jobs

    def submit(self, record: TrackedJob, entry: ModelEntry, work: Work) -> None:
        assert self._bridge is not None, "submit before start"
        if isinstance(work, TaskWork):
            self._submit_task_work(record, entry, work)
            return
        if entry.engine.queue_depth + self._looking_up[entry.id] >= entry.max_queue:
            raise RunnerFull
        if self.answers is None or not answers_from_cache(self.settings, entry, record):
            self._start(record, entry, work, None)
            return
        self._looking_up[entry.id] += 1
        task = asyncio.get_running_loop().create_task(self._look_up(record, entry, work),
                                                      name=f"cache:{record.id}")
        self._lookups[record.id] = task
        task.add_done_callback(lambda _: self._lookups.pop(record.id, None))

    def _start(self, record: TrackedJob, entry: ModelEntry, work: PuzzleWork,
               key: cache.CacheKey | None) -> None:
        """Submit the engine job; raises `RunnerFull`."""
        try:
            entry.engine.submit(self._job(record, entry, work, key))
        except QueueFull:
            raise RunnerFull from None
        self.ledger.accept(record, entry.engine.queue_depth)

    async def _look_up(self, record: TrackedJob, entry: ModelEntry, work: PuzzleWork) -> None:
        """Answer from the cache, or start the engine job (a full queue meanwhile: its 503)."""
        try:
            key = await asyncio.to_thread(cache_key_of, entry, record, work)
            if record.terminal:
                return  # cancelled while looking
            if self._answer_from_cache(record, entry, work, key):
                return
            self._lookups.pop(record.id, None)  # from here on, cancel through the engine
            try:
                self._start(record, entry, work, key)
            except RunnerFull:
                self.ledger.fail(record, errors.unavailable(
                    "queue_full", "the queue is full; retry later", self.settings.retry_after_s))
        except Exception:
            log.exception("could not start %s", record.id)
            self.ledger.fail(record, errors.internal())
        finally:
            self._looking_up[entry.id] -= 1

    def _answer_from_cache(self, record: TrackedJob, entry: ModelEntry, work: PuzzleWork,
                           key: cache.CacheKey) -> bool:
        assert self.answers is not None
        body = cached_result(self.metrics, entry, record, work, key,
                             self.answers.get(key.key))
        if body is None:
            return False
        self.ledger.accept(record, entry.engine.queue_depth)
        self.ledger.end(record, payloads.completed(body))
        return True

    def _job(self, record: TrackedJob, entry: ModelEntry, work: PuzzleWork,
             key: cache.CacheKey | None) -> Job:
        assert self._bridge is not None
        on_step = partial(self._on_step, record, entry)
        # A plain sync solve only needs its first step (time to first step); streams, jobs and
        # trajectories need every one.
        wants_all = record.keep_events or record.return_steps
        return Job(puzzle=work.cells, max_steps=record.max_steps,
                   halting=work.halting,
                   attempts=work.attempts, latent_noise=work.latent_noise, seed=work.seed,
                   search=work.search, deadline=work.deadline,
                   on_step=(self._bridge.wrap if wants_all else self._bridge.wrap_first)(on_step),
                   on_done=self._bridge.wrap(partial(self._on_done, record, entry, work, key)),
                   id=record.id)

    def _submit_task_work(self, record: TrackedJob, entry: ModelEntry, work: TaskWork) -> None:
        """Start a run of the work's job kind as a task on the loop."""
        assert self._bridge is not None
        context = RunContext(record.id, record.started, work.deadline, entry,
                             LedgerSink(self.ledger, record), self._bridge,
                             lambda: self.draining, self._room_in(entry))
        run = self.kinds[work.kind].start(context, work.spec)
        self._task_runs[record.id] = run
        self.ledger.accept(record, entry.engine.queue_depth, **work.accepted)
        task = asyncio.get_running_loop().create_task(run.execute(),
                                                      name=f"{work.kind}:{record.id}")
        task.add_done_callback(lambda _: self._task_runs.pop(record.id, None))

    def _room_in(self, entry: ModelEntry) -> asyncio.Event:
        return self._room.setdefault(entry.id, asyncio.Event())

    async def cancel(self, record: TrackedJob, reason: str) -> bool:
        if record.id in self._lookups:
            return True  # still looking in the cache: the lookup sees the record ended
        run = self._task_runs.pop(record.id, None)
        if run is not None:
            run.cancel()
            return True
        entry = self.registry.entries.get(record.model)
        # False: the engine finished it; its result is on its way to the loop
        return entry is None or entry.engine.cancel(record.id)

    async def _remember(self, entry: ModelEntry, work: PuzzleWork, record: TrackedJob,
                        key: cache.CacheKey | None, result: JobResult) -> None:
        """Cache a verified answer (any job's: streams and jobs fill the cache too)."""
        assert self.answers is not None
        if key is None:
            key = await asyncio.to_thread(cache_key_of, entry, record, work)
        value = cache.answer_value(key, result)
        if value is not None:
            self.answers.put(key.key, value)

    # ---------------------------------------------------------------- engine callbacks (loop)

    def _on_step(self, record: TrackedJob, entry: ModelEntry, update: StepUpdate) -> None:
        """One supervision step; step events are only built when someone can read them
        (streams, jobs), which keeps plain sync solves cheap."""
        if record.terminal:
            return
        self.ledger.running(record, update.elapsed_ms)
        if record.return_steps:
            record.trajectory.append(payloads.trajectory_entry(entry.task, update))
        if record.keep_events or record.subscribers:
            self.ledger.publish(record, "solve.step", payloads.step_data(entry.task, update),
                                event_id=update.step)

    def _on_done(self, record: TrackedJob, entry: ModelEntry, work: PuzzleWork,
                 key: cache.CacheKey | None, result: JobResult) -> None:
        """The engine's final word; ignored when the record already ended (a cancel the
        client was told about before the engine got to it). A verified answer is cached."""
        self._room_in(entry).set()
        if self.answers is not None and entry.task.can_verify and result.status == "solved":
            task = asyncio.get_running_loop().create_task(
                self._remember(entry, work, record, key, result))
            self._remembering.add(task)  # held until done: the loop keeps weak references
            task.add_done_callback(self._remembering.discard)
        if record.terminal:
            self.ledger.inflight.pop(record.id, None)
            return
        self.ledger.end(record, payloads.ending_of(
            record, entry.task, result, self.settings, puzzle=work.cells,
            calibration=entry.calibration, trajectory=record.trajectory))



class LedgerSink(RunSink):
    """A task run's reports as ledger events of its record (loop thread)."""

    def __init__(self, ledger: Ledger, record: TrackedJob) -> None:
        self.ledger, self.record = ledger, record
        self.done = record.done

    @property
    def ended(self) -> bool:
        return self.record.terminal

    def publish(self, name: str, data: dict[str, Any]) -> None:
        self.ledger.publish(self.record, name, data)

    def complete(self, body: dict[str, Any]) -> None:
        self.ledger.end(self.record, payloads.completed(body))

    def fail(self, error: ApiError, outcome: str) -> None:
        self.ledger.fail(self.record, error, outcome)

"""`LocalRunner`: jobs run on this process's engines, one engine thread per model.

Engine callbacks fire on the engine threads; the `LoopBridge` hands each to the event loop,
where it becomes a ledger event. ARC requests run as `ArcRun` tasks on the loop that feed the
same engines. Drain stops each engine thread and lets a pool thread finish its jobs within the
shutdown timeout (an engine has one owner thread at a time).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from app import payloads
from app.arc_run import ArcRun
from app.arc_service import ArcService
from app.jobs import JobRecord
from app.ledger import Ledger
from app.registry import ModelEntry, ModelRegistry
from app.runners.base import ArcWork, PuzzleWork, Runner, RunnerFull, Work, WorkKind
from app.settings import Settings
from app.worker import LoopBridge
from trm_core.engine import Job, JobResult, QueueFull, StepUpdate

log = logging.getLogger(__name__)


class LocalRunner(Runner):
    """Runs jobs on the registry's engines in this process."""

    def __init__(self, settings: Settings, registry: ModelRegistry, ledger: Ledger,
                 arc: ArcService) -> None:
        self.settings = settings
        self.registry = registry
        self.ledger = ledger
        self.arc = arc
        self.draining = False
        self._bridge: LoopBridge | None = None
        self._arc_runs: dict[str, ArcRun] = {}

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
        self.registry.start_workers()
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
        dead = reg.dead_workers() if self.started else []
        return {
            "models_loaded": loaded,
            "warmed_up": "ok" if reg.warmed else "pending",
            "workers_alive": ("ok" if self.started and not dead
                              else f"stopped: {', '.join(dead)}" if dead else "not started"),
        }

    def refusal(self, entry: ModelEntry, kind: WorkKind) -> str | None:
        return None if entry.worker.alive else "not_ready"

    def queue_position(self, entry: ModelEntry) -> int:
        return entry.engine.queue_depth

    async def drain(self) -> None:
        self.draining = True
        entries = list(self.registry.entries.values()) if self.started else []
        await asyncio.to_thread(self.registry.stop_workers, 10.0)
        await asyncio.gather(*(asyncio.to_thread(self._drain_engine, e) for e in entries))
        await asyncio.sleep(0)  # deliver the callbacks the engines scheduled while draining

    def _drain_engine(self, entry: ModelEntry) -> None:
        """Pool thread: finish what fits in the shutdown timeout, then fail the rest."""
        timeout_s = self.settings.shutdown_timeout_s
        if not entry.engine.drain(timeout_s):
            log.warning("%s did not drain within %.1f s; failing its jobs", entry.id, timeout_s)
            entry.engine.fail_all(payloads.SHUTDOWN_REASON)

    # ---------------------------------------------------------------------------- jobs

    def submit(self, record: JobRecord, entry: ModelEntry, work: Work) -> None:
        assert self._bridge is not None, "submit before start"
        if isinstance(work, ArcWork):
            self._submit_arc(record, entry, work)
            return
        job = self._job(record, entry, work)
        try:
            entry.engine.submit(job)
        except QueueFull:
            raise RunnerFull from None
        self.ledger.accept(record, entry.engine.queue_depth)

    def _job(self, record: JobRecord, entry: ModelEntry, work: PuzzleWork) -> Job:
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
                   on_done=self._bridge.wrap(partial(self._on_done, record, entry, work)),
                   id=record.id)

    def _submit_arc(self, record: JobRecord, entry: ModelEntry, work: ArcWork) -> None:
        assert self._bridge is not None
        run = ArcRun(self.arc, self.ledger, self._bridge, entry, record, work,
                     lambda: self.draining)
        self._arc_runs[record.id] = run
        self.ledger.accept(record, entry.engine.queue_depth, **work.accepted)
        task = asyncio.get_running_loop().create_task(run.execute(), name=f"arc:{record.id}")
        task.add_done_callback(lambda _: self._arc_runs.pop(record.id, None))

    async def cancel(self, record: JobRecord, reason: str) -> bool:
        run = self._arc_runs.pop(record.id, None)
        if run is not None:
            run.cancel()
            return True
        entry = self.registry.entries.get(record.model)
        # False: the engine finished it; its result is on its way to the loop
        return entry is None or entry.engine.cancel(record.id)

    # ---------------------------------------------------------------- engine callbacks (loop)

    def _on_step(self, record: JobRecord, entry: ModelEntry, update: StepUpdate) -> None:
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

    def _on_done(self, record: JobRecord, entry: ModelEntry, work: PuzzleWork,
                 result: JobResult) -> None:
        """The engine's final word; ignored when the record already ended (a cancel the
        client was told about before the engine got to it)."""
        if record.terminal:
            self.ledger.inflight.pop(record.id, None)
            return
        self.ledger.end(record, payloads.ending_of(
            record, entry.task, result, self.settings, puzzle=work.cells,
            calibration=entry.calibration, trajectory=record.trajectory))


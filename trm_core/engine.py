"""Step-level continuous batching for TRM inference.

A fixed number of slots share one persistent carry. Each `tick` admits queued jobs into free
slots, runs ONE supervision step for every active slot, emits one `StepUpdate` per job, and
retires jobs that are done. Pure torch + numpy, no asyncio: the service runs `Engine.run` on one
worker thread per device and bridges callbacks to its event loop.

The public data types live in `trm_core.engine_types` and are re-exported here; slot storage and
per-job bookkeeping live in `trm_core.engine_slots`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from trm_core.engine_slots import (
    Attempt,
    JobRecord,
    Readout,
    SlotPool,
    position_source,
    validate_job,
)
from trm_core.engine_types import (
    Halting,
    Job,
    JobResult,
    JobStatus,
    QueueFull,
    SearchConfig,
    StepUpdate,
    TickStats,
)
from trm_core.model import TRM
from trm_core.search import SearchRun
from trm_core.tasks.base import Task

__all__ = ["Engine", "Halting", "Job", "JobResult", "JobStatus", "QueueFull", "SearchConfig",
           "StepUpdate", "TickStats"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Engine:
    """A fixed pool of slots stepping many puzzles together; thread-safe submit and cancel.

    `submit`, `cancel`, `wake` and the read-only properties may be called from any thread. `tick`
    and everything built on it (`run`, `drain`, `fail_all`, `solve`, `solve_batch`, `warmup`)
    belong to one owner thread at a time. Callbacks run on the owner thread, outside the lock, so
    they may submit or cancel. The model must already live on `device`.

    `clock` gives the time that job deadlines and queue/compute times are read against
    (`time.monotonic` unless a test steps its own, as `app.jobs.JobStore` takes one).
    """

    def __init__(self, model: TRM, task: Task, slots: int = 16, max_queue: int = 64,
                 device: str | torch.device | None = None,
                 autocast_dtype: torch.dtype | None = None, seed: int = 0,
                 on_tick: Callable[[TickStats], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if slots < 1 or max_queue < 1:
            raise ValueError(f"slots and max_queue must be >= 1, got {slots} and {max_queue}")
        if (task.seq_len, task.vocab_size) != (model.config.seq_len, model.config.vocab_size):
            raise ValueError(f"task {task.name!r} (seq_len {task.seq_len}, vocab "
                             f"{task.vocab_size}) does not match the model's config")
        self.model = model
        self.task = task
        self.device = next(model.parameters()).device if device is None else torch.device(device)
        self.on_tick = on_tick
        self._now = clock
        self._pool = SlotPool(model, slots, self.device, autocast_dtype)
        self._max_queue = max_queue
        self._seed = seed
        self._admissions = 0  # seeds the attempts of jobs that bring no seed
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # Guarded by _lock: shared with submitting and cancelling threads.
        self._queue: deque[JobRecord] = deque()
        self._live: dict[str, JobRecord] = {}  # queued or running
        self._searches: dict[str, SearchRun] = {}  # searches by job id, between rounds too
        self._cancel_requests: set[str] = set()
        # Owner thread only.
        self._running: dict[str, JobRecord] = {}
        self._run_thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- state

    @property
    def slots(self) -> int:
        return self._pool.size

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype steps run under (None: the weights' own dtype)."""
        return self._pool.autocast_dtype

    @property
    def _puzzle_rows(self) -> int:
        """Rows of the puzzle-embedding table a job may name (1 without a table)."""
        table = self.model.puzzle_embedding
        return 1 if table is None else table.num_embeddings

    def _validate(self, job: Job) -> np.ndarray:
        config = self.model.config
        return validate_job(job, self.task.seq_len, config.max_supervision_steps, self.slots,
                            self._puzzle_rows, config.puzzle_emb_dim)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def active_slots(self) -> int:
        return self._pool.size - self._pool.free_count

    @property
    def free_slots(self) -> int:
        return self._pool.free_count

    @property
    def busy(self) -> bool:
        """True while any job is queued or running."""
        with self._lock:
            return bool(self._live)

    # ----------------------------------------------------------------- any-thread calls

    def submit(self, job: Job) -> None:
        """Queue a job (any thread). Raises QueueFull, or ValueError for a bad option. A job
        with a search budget runs as a `SearchRun`: rounds of plain jobs under its id."""
        puzzle = self._validate(job)
        if job.search is not None and job.search.budget_steps > 0 and self.task.can_verify:
            self._submit_search(job, puzzle)
            return
        fill = puzzle == 0
        record = JobRecord(job, puzzle, fill if fill.any() else np.ones_like(fill))
        with self._cond:
            if job.id in self._live:
                raise ValueError(f"id {job.id!r} is already queued or running")
            if len(self._queue) >= self._max_queue:
                raise QueueFull(f"the queue already holds {self._max_queue} jobs")
            job.submitted_at = self._now()
            self._queue.append(record)
            self._live[job.id] = record
            self._cond.notify_all()

    def _submit_search(self, job: Job, puzzle: np.ndarray) -> None:
        run = SearchRun(self, self.task, puzzle, job, on_end=self._end_search)
        with self._lock:
            if job.id in self._searches:
                raise ValueError(f"id {job.id!r} is already queued or running")
            self._searches[job.id] = run
        try:
            run.submit()
        except Exception:
            self._end_search(job.id)
            raise

    def _end_search(self, job_id: str) -> None:
        with self._lock:
            self._searches.pop(job_id, None)

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job at the next tick (any thread); False if unknown."""
        with self._cond:
            search = self._searches.get(job_id)
            if search is not None:  # no further round; the running one ends below
                search.plan.stopped = True
            if job_id not in self._live:
                return search is not None
            self._cancel_requests.add(job_id)
            self._cond.notify_all()
            return True

    def wake(self) -> None:
        """Cut short an idle wait in `run`, e.g. right after setting its stop event."""
        with self._cond:
            self._cond.notify_all()

    # ---------------------------------------------------------------------- scheduling

    def tick(self) -> int:
        """One scheduler iteration: admit, step, emit, retire. Returns active slots after it."""
        self._sweep(self._now())
        self._admit(self._now())
        rows = self._pool.occupied()
        if rows:
            self._step(rows)
        return self.active_slots

    def _sweep(self, now: float) -> None:
        """End cancelled jobs and jobs past their deadline, queued or running."""
        ended: list[tuple[JobRecord, JobStatus, str | None]] = []
        with self._lock:
            requests, self._cancel_requests = self._cancel_requests, set()
            for job_id, record in self._live.items():
                deadline = record.job.deadline
                if job_id in requests:
                    ended.append((record, "cancelled", None))
                elif deadline is not None and now >= deadline:
                    where = "queued" if record.admitted_at is None else f"{record.steps} steps"
                    ended.append((record, "timeout", f"deadline passed ({where})"))
            if ended:
                gone = {record.job.id for record, _, _ in ended}
                self._queue = deque(r for r in self._queue if r.job.id not in gone)
        for record, status, error in ended:
            self._finish(record, status, error)

    def _admit(self, now: float) -> None:
        """Move queued jobs into free slots in FIFO order; a head that does not fit blocks the
        jobs behind it, so big jobs are never overtaken forever."""
        admitted: list[JobRecord] = []
        with self._lock:
            free = self._pool.free_count
            while self._queue and self._queue[0].job.attempts <= free:
                record = self._queue.popleft()
                free -= record.job.attempts
                admitted.append(record)
        for record in admitted:
            try:
                self._start(record, now)
            except Exception as exc:
                logger.exception("admitting job %s failed", record.job.id)
                self._finish(record, "failed", f"admission failed: {exc!r}")

    def _start(self, record: JobRecord, now: float) -> None:
        """Claim slots for every attempt and load their puzzles (symmetry-transformed beyond
        attempt 0) into the carry."""
        job = record.job
        self._running[job.id] = record  # first, so _finish can free whatever was claimed
        record.admitted_at = now
        rng = np.random.default_rng(job.seed if job.seed is not None
                                    else [self._seed, self._admissions])
        self._admissions += 1
        for index in range(job.attempts):
            attempt = Attempt(index, job.id)
            if index > 0:
                attempt.symmetry = self.task.random_symmetry(rng)
                attempt.source = position_source(attempt.symmetry, self.task.seq_len)
                if attempt.source is None:
                    logger.warning("symmetry %r hides its position map; confidences of job %s "
                                   "stay in the transformed frame", attempt.symmetry, job.id)
            attempt.slot = self._pool.take(attempt)
            record.attempts.append(attempt)
        cells = np.stack([record.puzzle if a.symmetry is None else a.symmetry.apply(record.puzzle)
                          for a in record.attempts])  # (attempts, seq_len)
        slots = [a.slot for a in record.attempts if a.slot is not None]
        self._pool.load(slots, self.task.to_tokens(cells), self._noise(job, rng), job.puzzle_id,
                        job.puzzle_vector)

    def _noise(self, job: Job, rng: np.random.Generator) -> torch.Tensor | None:
        """Gaussian noise (attempts, L, D) for the initial z, zero for attempt 0; None if off."""
        if job.latent_noise <= 0 or job.attempts == 1:
            return None
        config = self.model.config
        generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
        noise = torch.randn((job.attempts, config.total_len, config.hidden_size),
                            generator=generator) * job.latent_noise
        noise[0] = 0
        return noise

    def _step(self, rows: list[int]) -> None:
        """One batched model step over `rows`, then per-job emission and retirement."""
        owners: list[Attempt] = [self._pool.owner[row] for row in rows]
        started = time.perf_counter()
        try:
            readout = self._pool.step(rows)
            cells = self.task.from_tokens(readout.ids)  # (B, seq_len) int8, model frame
        except Exception as exc:
            logger.exception("model step over %d slots failed; failing their jobs", len(rows))
            for job_id in dict.fromkeys(a.job_id for a in owners):
                self._finish(self._running[job_id], "failed", f"model step failed: {exc!r}")
            return
        duration = time.perf_counter() - started
        grouped: dict[str, list[tuple[Attempt, int]]] = {}
        for row, attempt in enumerate(owners):
            grouped.setdefault(attempt.job_id, []).append((attempt, row))
        for job_id, pairs in grouped.items():
            self._advance(self._running[job_id], pairs, readout, cells)
        self._report_tick(len(rows), duration)

    def _advance(self, record: JobRecord, pairs: list[tuple[Attempt, int]], readout: Readout,
                 cells: np.ndarray) -> None:
        """Record one step for a job's stepped attempts, emit its update, retire it if done."""
        record.steps += 1
        try:
            for attempt, row in pairs:
                halt = float(readout.halt_logits[row])
                if record.record(attempt, self.task, cells[row], readout.probs[row], halt):
                    self._pool.release(attempt.slot)
                    attempt.slot = None
            update = record.step_update(self._now())
        except Exception as exc:
            logger.exception("reading step %d of job %s failed", record.steps, record.job.id)
            self._finish(record, "failed", f"reading the step's output failed: {exc!r}")
            return
        if record.job.on_step is not None:
            error = _call(record.job.on_step, update, "on_step", record.job.id)
            if error is not None:
                self._finish(record, "failed", f"on_step raised {error!r}")
                return
        if record.done:
            self._finish(record, "solved" if update.valid else "unsolved")

    def _finish(self, record: JobRecord, status: JobStatus, error: str | None = None) -> None:
        """Free the job's slots, forget it and hand its JobResult to on_done (exactly once)."""
        for attempt in record.attempts:
            self._pool.release(attempt.slot)
            attempt.slot = None
        self._running.pop(record.job.id, None)
        with self._lock:
            if self._live.pop(record.job.id, None) is None:
                return  # already ended
        if status == "failed":
            logger.warning("job %s failed: %s", record.job.id, error)
        if record.job.on_done is not None:
            _call(record.job.on_done, record.result(status, error, self._now()), "on_done",
                  record.job.id)

    def _report_tick(self, batch_size: int, duration_s: float) -> None:
        if self.on_tick is not None:
            stats = TickStats(batch_size, duration_s, self.queue_depth, self.active_slots)
            _call(self.on_tick, stats, "on_tick", "-")

    # -------------------------------------------------------------------- owner loops

    def run(self, stop: threading.Event, idle_wait_s: float = 0.05) -> None:
        """Tick until `stop` is set; sleeps on the queue while there is nothing to do.

        Never raises: a failing tick is logged and the loop goes on. Jobs still queued or running
        when it returns stay there; the caller may `drain` or `fail_all` afterwards.
        """
        self._run_thread = threading.current_thread()
        logger.info("engine running: %d slots on %s", self.slots, self.device)
        try:
            while not stop.is_set():
                try:
                    self.tick()
                    self._wait_for_work(idle_wait_s)
                except Exception:
                    logger.exception("engine tick failed; continuing")
                    stop.wait(idle_wait_s)  # no hot loop on a persistent fault
        finally:
            self._run_thread = None
            logger.info("engine stopped")

    def _wait_for_work(self, timeout_s: float) -> None:
        with self._cond:
            if not (self._queue or self._running or self._cancel_requests):
                self._cond.wait(timeout_s)

    def drain(self, timeout_s: float) -> bool:
        """Tick until no job is queued or running; False if `timeout_s` passed first."""
        end = self._now() + timeout_s
        while self.busy:
            if self._now() >= end:
                return False
            self.tick()
        return True

    def fail_all(self, reason: str) -> None:
        """End every queued and running job with status "failed" and `reason` as its error."""
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
        for record in queued + list(self._running.values()):
            self._finish(record, "failed", reason)

    def solve(self, puzzle: np.ndarray, **options: Any) -> JobResult:
        """Synchronous convenience for scripts and evaluation: submit and tick until done.
        Only for use when no `run` thread owns this engine.

        `options` are `Job` fields; max_steps defaults to the model's max_supervision_steps.
        """
        return self.solve_batch([puzzle], **options)[0]

    def solve_batch(self, puzzles: Sequence[np.ndarray], **options: Any) -> list[JobResult]:
        """Solve many puzzles, up to `slots` attempts per step; results in input order.

        Same options as `solve`, shared by every puzzle, except `seed`: puzzle i gets seed + i,
        `puzzle_ids`: puzzle i gets puzzle_ids[i] as its `puzzle_id`, and `puzzle_vectors`:
        puzzle i gets puzzle_vectors[i] as its `puzzle_vector`.
        Every job is validated before any is submitted; the queue is fed as slots free up, so
        queue_ms stays meaningful. Only for use when no `run` thread owns this engine.
        """
        if self._run_thread is not None and self._run_thread is not threading.current_thread():
            raise RuntimeError("a run() thread owns this engine; submit jobs to it instead")
        results: list[JobResult | None] = [None] * len(puzzles)
        finished: list[int] = []
        jobs = self._batch_jobs(puzzles, dict(options), results, finished)
        pending = deque(jobs)
        while len(finished) < len(jobs):
            while pending and self.queue_depth < min(self._max_queue, self.slots):
                self.submit(pending.popleft())
            self.tick()
        return [result for result in results if result is not None]

    def _batch_jobs(self, puzzles: Sequence[np.ndarray], options: dict[str, Any],
                    results: list[JobResult | None], finished: list[int]) -> list[Job]:
        """Validated jobs whose on_done stores result i in `results` and notes i in `finished`."""
        options.setdefault("max_steps", self.model.config.max_supervision_steps)
        if "id" in options and len(puzzles) != 1:
            raise ValueError("id cannot name several jobs; leave it out of solve_batch")
        seed = options.pop("seed", None)
        user_done = options.pop("on_done", None)
        puzzle_ids = [int(i) for i in _per_puzzle(options.pop("puzzle_ids", None), len(puzzles),
                                                  "puzzle_ids", 0)]
        vectors = _per_puzzle(options.pop("puzzle_vectors", None), len(puzzles),
                              "puzzle_vectors", None)

        def done_callback(index: int) -> Callable[[JobResult], None]:
            def on_done(result: JobResult) -> None:
                results[index] = result
                finished.append(index)
                if user_done is not None:
                    user_done(result)
            return on_done

        jobs = []
        for index, puzzle in enumerate(puzzles):
            job = Job(puzzle=puzzle, on_done=done_callback(index),
                      seed=None if seed is None else int(seed) + index,
                      puzzle_id=puzzle_ids[index], puzzle_vector=vectors[index], **options)
            self._validate(job)
            jobs.append(job)
        return jobs

    def warmup(self) -> None:
        """Run one full step on a dummy puzzle so the first request pays no start-up cost."""
        blank = np.zeros((self.slots, self.task.seq_len), dtype=np.int8)
        self._pool.warmup(self.task.to_tokens(blank))


def _per_puzzle(given: Sequence[Any] | None, count: int, name: str, default: Any) -> list[Any]:
    """A per-puzzle option of `solve_batch` as a list of `count` values."""
    if given is None:
        return [default] * count
    values = list(given)
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} entries for {count} puzzles")
    return values


def _call(callback: Callable[[T], None], arg: T, what: str, job_id: str) -> Exception | None:
    """Run a user callback; log and return its exception instead of raising it."""
    try:
        callback(arg)
    except Exception as exc:
        logger.exception("%s of job %s raised", what, job_id)
        return exc
    return None


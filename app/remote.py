"""The API side of broker mode: enqueue jobs on Redis Streams and follow their event streams.

`RemoteJobs` replaces the in-process engine behind `SolveService` when `TRM_REDIS_URL` is set.
Admission stays synchronous: a watcher task refreshes Redis reachability, the models that live
workers announce and each model's queue depth twice a second, and `refusal` answers from that
snapshot. The Redis writes of a job (and the cache lookup) then run in a task per job. Events
come back through one `EventReader` per replica: a single blocking XREAD over the event streams
`trm:ev:{job}` of every job it follows, handing each event to the service, so following a
thousand jobs costs one Redis connection, and sync solves, POST streams and job event streams on
any replica read the same events. A followed job whose state vanished from Redis (a restart
without persistence) fails within seconds instead of waiting out its deadline.

Boundaries: asyncio redis-py only; no FastAPI. Job state lives in the service's `JobRecord`s;
this module only moves events between Redis and the `deliver` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app import broker, cache, errors, payloads
from app.jobs import JobRecord
from app.metrics import Metrics
from app.registry import ModelEntry
from app.settings import Settings
from trm_core.engine import JobResult

log = logging.getLogger(__name__)
Deliver = Callable[[JobRecord, str, dict[str, Any], int | None], None]
_WATCH_EVERY_S = 0.5
# A new follower waits at most this long for the reader's current XREAD to return.
_READ_BLOCK_MS = 100
_READ_COUNT = 100
_FOLLOW_MARGIN_S = 10.0
# A followed job whose event stream and result are both missing this long (two checks at least
# this far apart) is lost: Redis restarted without its data.
_LOST_AFTER_S = 5.0


@dataclass
class _Followed:
    record: JobRecord
    last: str
    end: float
    done: asyncio.Future[None]
    missing_since: float | None = None


class EventReader:
    """Follows many jobs' event streams with one blocking XREAD at a time (one connection).

    `follow` registers a job and waits until its terminal event arrived or its time is up; the
    reader task delivers every event in stream order, per job, exactly as it was written."""

    def __init__(self, client: aioredis.Redis, deliver: Deliver) -> None:
        self.client = client
        self.deliver = deliver
        self._followed: dict[str, _Followed] = {}
        self._wake = asyncio.Event()
        self._next_check = 0.0

    def __len__(self) -> int:
        return len(self._followed)

    async def follow(self, record: JobRecord, last: str, end: float) -> None:
        """Deliver `record`'s events after stream id `last` until its terminal event or the
        monotonic time `end` (or until its state is found lost); the caller checks
        `record.terminal` afterwards."""
        key = broker.events_key(record.id)
        if key in self._followed:  # already followed (a second waiter): wait for the same end
            await asyncio.shield(self._followed[key].done)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._followed[key] = _Followed(record, last, end, done)
        self._wake.set()
        try:
            await done
        finally:
            if self._followed.get(key) is not None and self._followed[key].done is done:
                del self._followed[key]

    async def run(self) -> None:
        """The reader task: forever, one XREAD over every followed stream."""
        while True:
            if not self._followed:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._read_once()
                await self._check_lost()
            except (RedisError, OSError) as exc:
                log.debug("reading job events failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
            except Exception:  # the reader must outlive any one bad reply, or every job hangs
                log.exception("reading job events failed")
                await asyncio.sleep(0.5)
            self._expire()

    async def _read_once(self) -> None:
        streams: dict[Any, Any] = {key: f.last for key, f in self._followed.items()}
        reply: Any = await self.client.xread(streams, count=_READ_COUNT, block=_READ_BLOCK_MS)
        for key, entries in reply or []:
            followed = self._followed.get(key)
            if followed is None:
                continue
            for event_id, fields in entries:
                followed.last = event_id
                name, data, sse_id = broker.decode_event(fields)
                self.deliver(followed.record, name, data, sse_id)
            followed.missing_since = None
            if followed.record.terminal:
                self._finish(key)

    async def _check_lost(self) -> None:
        """Every few seconds: jobs whose event stream and result are both gone are lost."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + _LOST_AFTER_S / 2
        keys = list(self._followed)
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            job_id = self._followed[key].record.id
            pipe.exists(key, broker.result_key(job_id))
        counts = await pipe.execute()
        for key, count in zip(keys, counts, strict=True):
            followed = self._followed.get(key)
            if followed is None or followed.record.terminal:
                continue
            if count:
                followed.missing_since = None
            elif followed.missing_since is None:
                followed.missing_since = now
            elif now - followed.missing_since >= _LOST_AFTER_S:
                log.warning("job %s is gone from Redis (restarted without its data)",
                            followed.record.id)
                self._finish(key)

    def _expire(self) -> None:
        now = time.monotonic()
        for key, followed in list(self._followed.items()):
            if followed.record.terminal or now >= followed.end:
                self._finish(key)

    def _finish(self, key: str) -> None:
        followed = self._followed.pop(key, None)
        if followed is not None and not followed.done.done():
            followed.done.set_result(None)


class RemoteJobs:
    """Enqueues, follows and cancels jobs through Redis for one API replica."""

    def __init__(self, settings: Settings, client: aioredis.Redis, metrics: Metrics,
                 deliver: Deliver) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self.deliver = deliver
        self.error: str | None = "not checked yet"
        self.live_models: set[str] = set()
        self.depth: dict[str, int] = {}
        # This replica's admissions minus its finished jobs since the last depth refresh: the
        # snapshot plus this stays close to the truth between refreshes.
        self._delta: dict[str, int] = {}
        self._entries: dict[str, ModelEntry] = {}
        self._finish = client.register_script(broker.FINISH_SCRIPT)
        self._tasks: set[asyncio.Task[None]] = set()
        self.reader = EventReader(client, deliver)
        self._reader_task: asyncio.Task[None] | None = None
        # Jobs of POST /v1/jobs on their way to Redis: True once queued, False when they could
        # not get there (their 202 waits for it; read, and dropped, by wait_enqueued).
        self._enqueued: dict[str, asyncio.Future[bool]] = {}

    # ------------------------------------------------------------------------ health

    def track(self, entries: list[ModelEntry]) -> None:
        """The models whose workers and queue depth the watcher follows."""
        self._entries = {e.id: e for e in entries}
        for entry in entries:
            self.metrics.register_model(
                entry.id, entry.task.name, entry.checkpoint.version, entry.checkpoint.sha256,
                "remote", entry.load_s, partial(self._live, entry.id))

    def _live(self, model: str) -> tuple[int, int]:
        """Scrape-time (queue depth, active slots): slots live on the workers, not here."""
        return self.depth.get(model, 0), 0

    async def watch(self) -> None:
        """Background task: refresh reachability, live workers and queue depths forever."""
        while True:
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:
                if self.error is None:
                    log.warning("redis unreachable: %s", exc)
                self.error = f"redis unreachable: {type(exc).__name__}"
                self.live_models = set()
            except Exception as exc:  # never let the watcher die: readiness would freeze
                log.exception("redis watcher failed")
                self.error = f"watcher failed: {type(exc).__name__}"
            await asyncio.sleep(_WATCH_EVERY_S)

    async def refresh(self) -> None:
        await self.client.ping()
        keys = [key async for key in self.client.scan_iter(broker.WORKER_PATTERN, count=100)]
        beats = await self.client.mget(keys) if keys else []
        self.live_models = {m for raw in beats for m in broker.heartbeat_models(raw)}
        ids = list(self._entries)
        depth_keys = [broker.depth_key(self._entries[i].task.name, i) for i in ids]
        values = await self.client.mget(depth_keys) if ids else []
        self.depth = {i: max(0, int(v or 0)) for i, v in zip(ids, values, strict=True)}
        self._delta.clear()
        if self.error is not None:
            log.info("redis reachable")
        self.error = None

    def workers_status(self) -> str:
        missing = sorted(set(self._entries) - self.live_models)
        return "ok" if not missing else f"no live worker for {', '.join(missing)}"

    def refusal(self, entry: ModelEntry, max_queue: int) -> str | None:
        """Why a new job for `entry` must be refused now (a 503 reason), or None."""
        if self.error is not None or entry.id not in self.live_models:
            return "not_ready"
        queued = self.depth.get(entry.id, 0) + self._delta.get(entry.id, 0)
        if queued >= max_queue:
            return "queue_full"
        self._count(entry.id, +1)
        return None

    def _count(self, model: str, change: int) -> None:
        self._delta[model] = self._delta.get(model, 0) + change

    # ------------------------------------------------------------------------ submitting

    def submit(self, record: JobRecord, entry: ModelEntry, message: broker.JobMessage,
               cells: np.ndarray) -> None:
        """Enqueue (or answer from the cache) and follow the job, in a task of its own."""
        if record.kind == "job":
            self._enqueued[record.id] = asyncio.get_running_loop().create_future()
        self._spawn(self._run(record, entry, message, cells), record.id)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"remote:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, record: JobRecord, entry: ModelEntry, message: broker.JobMessage,
                   cells: np.ndarray) -> None:
        try:
            await self._run_job(record, entry, message, cells)
        finally:
            self._count(entry.id, -1)

    async def _run_job(self, record: JobRecord, entry: ModelEntry, message: broker.JobMessage,
                       cells: np.ndarray) -> None:
        try:
            cached = await self._lookup(record, entry, message, cells)
            await self._enqueue(record, entry, message, cached)
        except (RedisError, OSError) as exc:
            self._mark_enqueued(record.id, False)
            log.warning("could not enqueue %s: %s", record.id, exc)
            problem = errors.unavailable("broker", "the job queue is unreachable; retry later",
                                         self.settings.retry_after_s)
            self.deliver(record, "solve.failed", problem.to_problem(
                record.request_id, self.settings.problem_base_uri), None)
            return
        self._mark_enqueued(record.id, True)
        await self.follow(record, "0-0", message.remaining_s())

    def _mark_enqueued(self, job_id: str, queued: bool) -> None:
        waiter = self._enqueued.get(job_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(queued)

    async def wait_enqueued(self, job_id: str, timeout_s: float = 10.0) -> bool:
        """Wait until the job is in Redis, so a 202 means any replica can find it; False when
        it could not get there (nothing of it was queued). After `timeout_s` it is still on
        its way: True, and a later failure arrives as its terminal event."""
        waiter = self._enqueued.get(job_id)
        if waiter is None:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        except TimeoutError:
            return True
        finally:
            self._enqueued.pop(job_id, None)

    async def _lookup(self, record: JobRecord, entry: ModelEntry, message: broker.JobMessage,
                      cells: np.ndarray) -> dict[str, Any] | None:
        """The completed result of a cached symmetric twin, or None (a miss)."""
        if not self.settings.cache_enabled or not entry.task.can_verify:
            return None
        key = await asyncio.to_thread(cache.cache_key, entry.task, cells,
                                      entry.checkpoint.sha256, message.max_steps,
                                      message.halting, message.attempts, message.search_key)
        raw = await self.client.get(key.key)
        hit = None if raw is None else cache.decode(entry.task, cells, key, raw)
        self.metrics.cache_requests.labels(entry.task.name, "miss" if hit is None else "hit").inc()
        if hit is None:
            return None
        elapsed_ms = (time.monotonic() - record.started) * 1000
        result = JobResult(record.id, "solved", hit.answer, True, hit.steps_used,
                           hit.halted_early, hit.confidence, hit.q_halt, 0, message.attempts,
                           0.0, 0.0, elapsed_ms)
        body = payloads.result_body(record, entry.task, result, cells, entry.calibration)
        body["cached"] = True
        return body

    async def _enqueue(self, record: JobRecord, entry: ModelEntry, message: broker.JobMessage,
                       cached: dict[str, Any] | None) -> None:
        """One transaction: metadata, depth, the accepted event, then the queue message (or,
        for a cache hit, the terminal event straight away)."""
        ttl = max(1, int(self.settings.job_ttl_s))
        events = broker.events_key(record.id)
        accepted = payloads.accepted_data(record, self.depth.get(entry.id, 0))
        pipe = self.client.pipeline(transaction=True)
        if record.kind == "job":
            meta = broker.meta_key(record.id)
            pipe.hset(meta, mapping={"task": record.task, "model": record.model,
                                     "max_steps": record.max_steps,
                                     "request_id": record.request_id,
                                     "created_at": repr(record.created_at)})
            pipe.expire(meta, ttl)
        pipe.incr(broker.depth_key(message.task, message.model))
        pipe.xadd(events, broker.event_fields("solve.accepted", accepted, 0),
                  maxlen=broker.EVENT_MAXLEN, approximate=False)
        pipe.expire(events, ttl)
        if cached is None:
            pipe.xadd(broker.queue_key(message.task, message.model), message.to_fields())
        else:
            keys, args = broker.finish_args(message, "solve.completed", cached, ttl)
            await self._finish(keys=keys, args=args, client=pipe)
        await pipe.execute()

    # ------------------------------------------------------------------------ following

    async def follow(self, record: JobRecord, last: str, remaining_s: float) -> None:
        """Deliver the job's events after stream id `last` until its terminal event. A job no
        worker finished long after its deadline (every worker gone) fails with a 504; one whose
        state vanished from Redis fails at once with a 503 (submit it again)."""
        if self._reader_task is None or self._reader_task.done():
            self._reader_task = asyncio.get_running_loop().create_task(
                self.reader.run(), name="trm-events")
        budget = (max(0.0, remaining_s) + self.settings.reclaim_idle_s *
                  self.settings.max_deliveries + _FOLLOW_MARGIN_S)
        end = time.monotonic() + budget
        await self.reader.follow(record, last, end)
        if not record.terminal:
            lost = time.monotonic() < end
            await self._give_up(record, lost)

    async def _give_up(self, record: JobRecord, lost: bool) -> None:
        if lost:
            error = errors.unavailable("broker", "the job queue lost this job (Redis restarted "
                                       "without its data); submit it again",
                                       self.settings.retry_after_s)
        else:
            error = errors.timeout("no worker finished the job in time")
        problem = error.to_problem(record.request_id, self.settings.problem_base_uri)
        with contextlib.suppress(RedisError, OSError):
            await self._finish_remote(record, "solve.failed", problem)
        self.deliver(record, "solve.failed", problem, None)

    async def _finish_remote(self, record: JobRecord, name: str, data: dict[str, Any]) -> bool:
        message = broker.JobMessage(record.id, record.kind, record.task, record.model,
                                    record.request_id, [], record.max_steps, "auto", 1, 0.0,
                                    0.0, "none", False)
        keys, args = broker.finish_args(message, name, data, self.settings.job_ttl_s)
        return bool(await self._finish(keys=keys, args=args))

    # ------------------------------------------------------------------------ other replicas

    async def adopt(self, record: JobRecord) -> None:
        """Catch a job made on another replica up from its event stream, then follow it."""
        last = await self._catch_up(record)
        if not record.terminal:
            self._spawn(self.follow(record, last, self.settings.job_timeout_s), record.id)

    async def _catch_up(self, record: JobRecord) -> str:
        """Deliver every stored event; returns the stream id to follow from."""
        last = "0-0"
        entries: Any = await self.client.xrange(broker.events_key(record.id))
        for event_id, fields in entries:
            last = event_id
            name, data, sse_id = broker.decode_event(fields)
            self.deliver(record, name, data, sse_id)
        return last

    async def metadata(self, job_id: str) -> dict[str, str] | None:
        """The stored description of an addressable job, or None (unknown or expired)."""
        try:
            meta: Any = await self.client.hgetall(broker.meta_key(job_id))
        except (RedisError, OSError):
            return None
        return meta or None

    async def cancel(self, record: JobRecord, reason: str) -> bool:
        """Finish the job as cancelled unless someone finished it first; tell the workers."""
        data = payloads.cancelled_data(record, reason)
        if not await self._finish_remote(record, "solve.cancelled", data):
            return False
        await self.client.publish(broker.CANCEL_CHANNEL, record.id)
        return True

    def cancel_soon(self, record: JobRecord, reason: str) -> None:
        """Fire-and-forget cancel, for callers that cannot wait (a client went away)."""

        async def run() -> None:
            with contextlib.suppress(RedisError, OSError):
                await self.cancel(record, reason)

        self._spawn(run(), f"cancel:{record.id}")

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._reader_task] if self._reader_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()

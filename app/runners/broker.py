"""`BrokerRunner`: jobs go on Redis Streams for broker worker processes (`app.worker_main`);
this replica follows their event streams.

Chosen when `TRM_REDIS_URL` is set. The replica reads model cards only (no weights, no engine
buffers): the workers run the models. Admission stays synchronous: a watcher task refreshes
Redis reachability, the models that live workers announce and each model's queue depth twice a
second, and `refusal` answers from that snapshot. The Redis writes of a job (and the cache
lookup) then run in a task per job. Events come back through one `EventReader` per replica
(`broker_events`), so following a thousand jobs costs one Redis connection, and sync solves,
POST streams and job event streams on any replica read the same events. A followed job whose
state vanished from Redis (a restart without persistence) fails within seconds instead of
waiting out its deadline. Work of a task's own job kind (`TaskWork`: ARC's adapt-then-vote)
goes on the model's queue like a puzzle, its spec encoded by its `JobKind`; a worker runs it
with the same driver the local runner uses and writes its events to the same stream.

Boundaries: asyncio redis-py only; no FastAPI. Events read back become ledger events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app import broker, errors, payloads
from app.jobs import TrackedJob
from app.ledger import Ledger
from app.metrics import Metrics
from app.registry import ModelEntry, ModelRegistry
from app.runners.base import (
    PUZZLE,
    PuzzleWork,
    Runner,
    TaskWork,
    Work,
    WorkKind,
    answers_from_cache,
    cache_key_of,
    cached_result,
)
from app.runners.broker_events import EventReader
from app.settings import Settings
from app.task_jobs import job_kinds
from app.task_runs import JobKind

log = logging.getLogger(__name__)
_WATCH_EVERY_S = 0.5
_FOLLOW_MARGIN_S = 10.0


def connect(settings: Settings) -> aioredis.Redis:
    """The replica's client: a bounded pool that makes a caller wait for a free connection
    instead of failing (jobs in flight share one event reader, so their count no longer sets
    the connection count)."""
    assert settings.redis_url is not None
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_max_connections, timeout=10,
        decode_responses=True, socket_connect_timeout=2.0, socket_timeout=10.0,
        client_name="trm-api")
    log.info("broker mode: jobs go through %s", settings.redis_url.split("@")[-1])
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


def message_of(record: TrackedJob, work: PuzzleWork) -> broker.JobMessage:
    """The queue message of an admitted puzzle (its deadline on the wall clock)."""
    search = work.search
    return broker.JobMessage(
        record.id, record.kind, record.task, record.model, record.request_id,
        [int(v) for v in work.cells], record.max_steps, work.halting, work.attempts,
        work.latent_noise, _wall(work.deadline),
        "all" if record.keep_events else "first", bool(record.return_steps),
        budget_steps=0 if search is None else search.budget_steps,
        search_attempts=1 if search is None else search.attempts,
        search_round_steps=0 if search is None else search.round_steps, seed=work.seed,
        created_at=_wall(record.started))


def task_message_of(record: TrackedJob, work: TaskWork, kind: JobKind) -> broker.JobMessage:
    """The queue message of admitted work of a task's job kind (no puzzle: `spec` says it)."""
    return broker.JobMessage(
        record.id, record.kind, record.task, record.model, record.request_id, [],
        record.max_steps, "auto", 1, 0.0, _wall(work.deadline), "all", False, work=work.kind,
        spec=kind.encode(work.spec), created_at=_wall(record.started))


def _wall(monotonic: float) -> float:
    """A monotonic time of this process on the wall clock (epoch seconds)."""
    return time.time() + (monotonic - time.monotonic())


class BrokerRunner(Runner):
    """Enqueues, follows and cancels jobs through Redis for one API replica."""

    def __init__(self, settings: Settings, registry: ModelRegistry, ledger: Ledger,
                 metrics: Metrics, client: aioredis.Redis) -> None:
        self.settings = settings
        self.registry = registry
        self.ledger = ledger
        self.client = client
        self.metrics = metrics
        self.kinds = job_kinds(settings)
        self.error: str | None = "not checked yet"
        self.live_models: set[str] = set()
        self.depth: dict[str, int] = {}
        # This replica's admissions minus its finished jobs since the last depth refresh: the
        # snapshot plus this stays close to the truth between refreshes.
        self._delta: dict[str, int] = {}
        self._entries: dict[str, ModelEntry] = {}
        self._finish = client.register_script(broker.FINISH_SCRIPT)
        self._tasks: set[asyncio.Task[None]] = set()
        self.reader = EventReader(client, self._deliver)
        self._reader_task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        # Jobs of POST /v1/jobs on their way to Redis: True once queued, False when they could
        # not get there (their 202 waits for it; read, and dropped, by enqueued).
        self._enqueued: dict[str, asyncio.Future[bool]] = {}

    # ------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Read the model cards (no weights: the workers run the models), then watch Redis
        and the workers."""
        try:
            await asyncio.to_thread(self.registry.read_cards)
        except Exception as exc:
            log.exception("start-up failed")
            self.startup_error = f"{type(exc).__name__}: {exc}"
            return
        self._track(list(self.registry.entries.values()))
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="trm-redis")
        self.started = True
        log.info("broker mode ready: %s", ", ".join(self.registry.entries) or "no models")

    def readiness(self) -> dict[str, str]:
        if self.startup_error:
            loaded = f"start-up failed: {self.startup_error}"
        else:
            loaded = self.registry.check() if self.started else "loading"
        return {"models_loaded": loaded,
                "redis": self.error or "ok",
                "workers_alive": self._workers_status() if self.started else "not started"}

    async def drain(self) -> None:
        """Wait for this replica's in-flight requests; their jobs keep running on the
        workers, so only the waiting clients are told about the shutdown."""
        end = time.monotonic() + self.settings.shutdown_timeout_s
        while self.ledger.inflight and time.monotonic() < end:
            await asyncio.sleep(0.05)
        if self._watcher is not None:
            self._watcher.cancel()
        await self.close()

    # ------------------------------------------------------------------------ health

    def _track(self, entries: list[ModelEntry]) -> None:
        """The models whose workers and queue depth the watcher follows."""
        self._entries = {e.id: e for e in entries}
        for entry in entries:
            self.metrics.register_model(
                entry.id, entry.task.name, entry.checkpoint.version, entry.checkpoint.sha256,
                "remote", entry.load_s, partial(self._live, entry.id))

    def _live(self, model: str) -> tuple[int, int]:
        """Scrape-time (queue depth, active slots): slots live on the workers, not here."""
        return self.depth.get(model, 0), 0

    async def _watch(self) -> None:
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

    def _workers_status(self) -> str:
        missing = sorted(set(self._entries) - self.live_models)
        return "ok" if not missing else f"no live worker for {', '.join(missing)}"

    def refusal(self, entry: ModelEntry, kind: WorkKind) -> str | None:
        if kind != PUZZLE and kind not in self.kinds:
            return "unsupported"
        if self.error is not None or entry.id not in self.live_models:
            return "not_ready"
        queued = self.depth.get(entry.id, 0) + self._delta.get(entry.id, 0)
        if queued >= (self.settings.max_queue_size or entry.max_queue):
            return "queue_full"
        self._count(entry.id, +1)
        return None

    def queue_position(self, entry: ModelEntry) -> int:
        return self.depth.get(entry.id, 0)

    def _count(self, model: str, change: int) -> None:
        self._delta[model] = self._delta.get(model, 0) + change

    # ------------------------------------------------------------------------ submitting

    def submit(self, record: TrackedJob, entry: ModelEntry, work: Work) -> None:
        """Enqueue (or answer from the cache) and follow the job, in a task of its own."""
        message = (message_of(record, work) if isinstance(work, PuzzleWork)
                   else task_message_of(record, work, self.kinds[work.kind]))
        if record.kind == "job":
            self._enqueued[record.id] = asyncio.get_running_loop().create_future()
        self.ledger.track(record)
        self._spawn(self._run(record, entry, message, work), record.id)

    def _deliver(self, record: TrackedJob, name: str, data: dict[str, Any],
                 event_id: int | None) -> None:
        """An event read from the job's Redis stream, as a ledger event."""
        if record.terminal:
            self.ledger.inflight.pop(record.id, None)
            return
        if name in broker.TERMINAL_EVENTS:
            self.ledger.end(record, payloads.ending_from_event(name, data))
            return
        if name == "solve.step":
            self.ledger.running(record, float(data.get("elapsed_ms", 0.0)))
            if not (record.keep_events or record.subscribers):
                return  # a plain sync solve's first step: timed, nobody reads it
        self.ledger.publish(record, name, data, event_id=event_id)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"broker:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, record: TrackedJob, entry: ModelEntry, message: broker.JobMessage,
                   work: Work) -> None:
        try:
            await self._run_job(record, entry, message, work)
        finally:
            self._count(entry.id, -1)

    async def _run_job(self, record: TrackedJob, entry: ModelEntry, message: broker.JobMessage,
                       work: Work) -> None:
        try:
            if isinstance(work, PuzzleWork):
                cached = await self._lookup(record, entry, message, work)
                accepted: dict[str, Any] = {}
            else:
                cached, accepted = None, work.accepted
            await self._enqueue(record, entry, message, cached, accepted)
        except (RedisError, OSError) as exc:
            self._mark_enqueued(record.id, False)
            log.warning("could not enqueue %s: %s", record.id, exc)
            problem = errors.unavailable("broker", "the job queue is unreachable; retry later",
                                         self.settings.retry_after_s)
            self.ledger.fail(record, problem)
            return
        self._mark_enqueued(record.id, True)
        await self.follow(record, "0-0", message.remaining_s())

    def _mark_enqueued(self, job_id: str, queued: bool) -> None:
        waiter = self._enqueued.get(job_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(queued)

    async def enqueued(self, record: TrackedJob, timeout_s: float = 10.0) -> bool:
        """Wait until the job is in Redis, so a 202 means any replica can find it; False when
        it could not get there (nothing of it was queued). After `timeout_s` it is still on
        its way: True, and a later failure arrives as its terminal event."""
        job_id = record.id
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

    async def _lookup(self, record: TrackedJob, entry: ModelEntry, message: broker.JobMessage,
                      work: PuzzleWork) -> dict[str, Any] | None:
        """The completed result of a cached symmetric twin, or None (a miss)."""
        if not answers_from_cache(self.settings, entry, record):
            return None
        key = await asyncio.to_thread(cache_key_of, entry, record, work)
        return cached_result(self.metrics, entry, record, work, key,
                             await self.client.get(key.key))

    async def _enqueue(self, record: TrackedJob, entry: ModelEntry, message: broker.JobMessage,
                       cached: dict[str, Any] | None, extra: dict[str, Any]) -> None:
        """One transaction: metadata, depth, the accepted event (with the work's `extra`
        fields), then the queue message (or, for a cache hit, the terminal event straight
        away)."""
        ttl = max(1, int(self.settings.job_ttl_s))
        events = broker.events_key(record.id)
        accepted = payloads.accepted_data(record, self.depth.get(entry.id, 0), **extra)
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

    async def follow(self, record: TrackedJob, last: str, remaining_s: float) -> None:
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

    async def _give_up(self, record: TrackedJob, lost: bool) -> None:
        if lost:
            error = errors.unavailable("broker", "the job queue lost this job (Redis restarted "
                                       "without its data); submit it again",
                                       self.settings.retry_after_s)
        else:
            error = errors.timeout("no worker finished the job in time")
        problem = error.to_problem(record.request_id, self.settings.problem_base_uri)
        with contextlib.suppress(RedisError, OSError):
            await self._finish_in_redis(record, "solve.failed", problem)
        self.ledger.fail(record, error)

    async def _finish_in_redis(self, record: TrackedJob, name: str, data: dict[str, Any]) -> bool:
        # The larger cap never trims a task run's events; a puzzle's stream is kept short as
        # its steps are written.
        keys, args = broker.finish_args(record, name, data, self.settings.job_ttl_s,
                                        maxlen=broker.TASK_EVENT_MAXLEN)
        return bool(await self._finish(keys=keys, args=args))

    # ------------------------------------------------------------------------ other replicas

    async def find(self, job_id: str) -> TrackedJob | None:
        """A job made on another replica, followed from Redis from now on (None: unknown or
        expired)."""
        meta = await self._metadata(job_id)
        if meta is None:
            return None
        record = TrackedJob(job_id, "job", meta["task"], meta["model"], int(meta["max_steps"]),
                           meta.get("request_id", ""), keep_events=True,
                           created_at=float(meta.get("created_at", time.time())))
        self.ledger.store.add(record)
        await self._adopt(record)
        return record

    async def catch_up(self, record: TrackedJob) -> None:
        """A job finished anywhere has its terminal event in its result key: read it, so a
        poll right after a cancel on another replica already says so."""
        try:
            raw: Any = await self.client.get(broker.result_key(record.id))
        except (RedisError, OSError):
            return  # the event reader brings the ending once Redis answers
        if raw is not None and not record.terminal:
            terminal = json.loads(raw)
            self._deliver(record, terminal["name"], terminal["data"], None)

    async def _adopt(self, record: TrackedJob) -> None:
        """Catch a job made on another replica up from its event stream, then follow it."""
        last = await self._catch_up(record)
        if not record.terminal:
            self._spawn(self.follow(record, last, self.settings.job_timeout_s), record.id)

    async def _catch_up(self, record: TrackedJob) -> str:
        """Deliver every stored event; returns the stream id to follow from."""
        last = "0-0"
        entries: Any = await self.client.xrange(broker.events_key(record.id))
        for event_id, fields in entries:
            last = event_id
            name, data, sse_id = broker.decode_event(fields)
            self._deliver(record, name, data, sse_id)
        return last

    async def _metadata(self, job_id: str) -> dict[str, str] | None:
        """The stored description of an addressable job, or None (unknown or expired)."""
        try:
            meta: Any = await self.client.hgetall(broker.meta_key(job_id))
        except (RedisError, OSError):
            return None
        return meta or None

    async def cancel(self, record: TrackedJob, reason: str) -> bool:
        """Finish the job as cancelled unless someone finished it first; tell the workers.
        With Redis unreachable the record still ends here (a worker's late result for it is
        ignored)."""
        data = payloads.cancelled_data(record, reason)
        try:
            if not await self._finish_in_redis(record, "solve.cancelled", data):
                return False
            await self.client.publish(broker.CANCEL_CHANNEL, record.id)
        except (RedisError, OSError) as exc:
            log.warning("could not cancel %s in Redis: %s", record.id, exc)
        return True

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._reader_task] if self._reader_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()

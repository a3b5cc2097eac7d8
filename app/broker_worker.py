"""A broker-mode worker: takes solve jobs from Redis Streams and feeds the same `Engine` the
local runner uses; engine callbacks become events on each job's stream. A job of a task's own
kind (ARC's adapt-then-vote) runs on `WorkerRuns`' loop thread with the driver the local runner
uses, feeding the same engine; its events and ending take the same way out.

Threads: the caller's thread runs `BrokerWorker.run` (read, reclaim, heartbeat, cancels); each
engine steps on its `EngineThread`; task runs share one loop thread; one publisher thread writes
events and results in pipelined batches, so engine callbacks never wait on the network.

Delivery guarantees: a message is acked only after its job's terminal event was written (or
someone else already wrote one), so a worker that dies leaves its jobs pending; any worker's
periodic XAUTOCLAIM takes them over once idle longer than `TRM_RECLAIM_IDLE_S` and restarts them
from step 0. On every reclaim tick a worker also looks over the messages pending under its own
name and starts those it does not hold: a read whose reply was lost, or a batch cut short when
Redis went away mid-read, is picked up once Redis is back, without waiting out the reclaim time
(and a worker restarted under the same name picks up what it was handed). The finish script's
SET NX on the result key makes the terminal event unique, and a job delivered more than
`TRM_MAX_DELIVERIES` times is moved to the dead-letter stream and failed. Boundaries: no
FastAPI; Redis access is the sync redis-py client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from app import broker, cache, errors, payloads
from app.registry import ModelEntry, ModelRegistry
from app.settings import Settings
from app.worker_runs import WorkerRuns
from trm_core.engine import Job, JobResult, QueueFull, StepUpdate

log = logging.getLogger(__name__)
_MAX_BACKOFF_S = 5.0
_READ_BLOCK_MS = 100


@dataclass
class Delivery:
    """One job a worker holds: its message, where it came from, and its trajectory so far."""

    message: broker.JobMessage
    message_id: str
    entry: ModelEntry
    cells: np.ndarray
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    first_sent: bool = False


class BrokerWorker:
    """Consumes the queue streams of every model in `registry` as consumer `worker_id`."""

    def __init__(self, settings: Settings, registry: ModelRegistry, client: redis.Redis,
                 worker_id: str | None = None) -> None:
        self.settings = settings
        self.client = client
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.streams = {broker.queue_key(e.checkpoint.task, e.id): e
                        for e in registry.entries.values()}
        self._finish = client.register_script(broker.FINISH_SCRIPT)
        self._out: queue.Queue[tuple[str, Delivery, Any]] = queue.Queue()
        self._pubsub: Any = None
        self._next_beat = 0.0
        self._next_reclaim = 0.0
        self.connected = threading.Event()
        self.task_runs = WorkerRuns(settings)
        # message ids of jobs taken and not yet ended in Redis (running, or their ending waits
        # to be published)
        self._held: set[str] = set()

    # ---------------------------------------------------------------------------- main loop

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set, reconnecting with exponential backoff whenever Redis is
        unreachable; then let running jobs finish and flush their results."""
        publisher = threading.Thread(target=self._publish_forever, args=(stop,),
                                     name="broker-publisher", daemon=True)
        publisher.start()
        self.task_runs.start()
        backoff = 0.2
        while not stop.is_set():
            try:
                self._connect()
                backoff = 0.2
                while not stop.is_set():
                    self._cycle(stop)
            except redis.RedisError as exc:
                self.connected.clear()
                log.warning("redis unavailable (%s); retrying in %.1f s", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
        self._wind_down(publisher)

    def _connect(self) -> None:
        self.client.ping()
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, broker.GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        if self._pubsub is not None:
            self._pubsub.close()
        self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(broker.CANCEL_CHANNEL)
        self._next_beat = self._next_reclaim = 0.0
        self.connected.set()
        log.info("worker %s connected; serving %s", self.worker_id,
                 ", ".join(e.id for e in self.streams.values()))

    def _cycle(self, stop: threading.Event) -> None:
        now = time.monotonic()
        if now >= self._next_beat:
            self._heartbeat()
            self._next_beat = now + self.settings.worker_heartbeat_s
        if now >= self._next_reclaim:
            self._reclaim()
            self._next_reclaim = now + max(0.2, min(self.settings.reclaim_idle_s / 2, 10.0))
        self._poll_cancels()
        wanted: dict[Any, Any] = {s: ">" for s, e in self.streams.items() if _free(e) > 0}
        if not wanted:
            stop.wait(0.01)  # every slot busy: the engines' next ticks free some
            return
        count = max(_free(self.streams[s]) for s in wanted)
        try:
            replies: Any = self.client.xreadgroup(broker.GROUP, self.worker_id, wanted, count=count,
                                             block=_READ_BLOCK_MS)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis restarted without data: make the groups again
                raise redis.ConnectionError("consumer group missing") from exc
            raise
        for stream, messages in replies or []:
            for message_id, fields in messages:
                self._take(self.streams[stream], message_id, fields)

    def _heartbeat(self) -> None:
        models = sorted(e.id for e in self.streams.values())
        value = broker.heartbeat_value(self.worker_id, models, os.getpid())
        ttl = max(1, int(self.settings.worker_heartbeat_s * 3 + 0.999))
        self.client.set(broker.worker_key(self.worker_id), value, ex=ttl)

    def _poll_cancels(self) -> None:
        for _ in range(256):
            message = self._pubsub.get_message(timeout=0)
            if message is None:
                return
            if message.get("type") == "message":
                job_id = str(message["data"])
                for entry in self.streams.values():
                    entry.engine.cancel(job_id)
                self.task_runs.cancel(job_id)

    # --------------------------------------------------------------------- taking jobs

    def _take(self, entry: ModelEntry, message_id: str, fields: dict[str, str]) -> None:
        """Start one delivered job on the engine, unless it already has a result."""
        message = broker.JobMessage.from_fields(fields)
        if self.client.exists(broker.result_key(message.job_id)):
            # finished (or cancelled while queued) elsewhere: nothing to redo, and its message
            # leaves the stream rather than staying there acked
            stream = broker.queue_key(entry.checkpoint.task, entry.id)
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(stream, broker.GROUP, message_id)
            pipe.xdel(stream, message_id)
            pipe.execute()
            return
        cells = np.asarray(message.puzzle, dtype=np.int8)
        delivery = Delivery(message, message_id, entry, cells)
        self._held.add(message_id)
        if message.work != "puzzle":
            self._take_task_work(delivery)
            return
        job = Job(puzzle=cells, max_steps=message.max_steps,
                  halting="never" if message.halting == "never" else "auto",
                  attempts=message.attempts, latent_noise=message.latent_noise,
                  seed=message.seed, search=message.search(),
                  deadline=time.monotonic() + message.remaining_s(),
                  on_step=lambda update: self._on_step(delivery, update),
                  on_done=lambda result: self._on_done(delivery, result),
                  id=message.job_id)
        try:
            entry.engine.submit(job)
        except QueueFull:
            self._held.discard(message_id)
            log.warning("engine queue full; job %s stays pending until there is room",
                        message.job_id)
        except ValueError as exc:
            if "already queued or running" in str(exc):
                return  # a reclaim of a job this worker is still running
            self._out.put(("failed", delivery, f"invalid job: {exc}"))

    def _take_task_work(self, delivery: Delivery) -> None:
        """Start a job of a task's own kind on the task-run loop (once per worker)."""
        message = delivery.message
        if self.task_runs.holds(message.job_id):
            return  # a reclaim of a job this worker is still running
        if message.work not in self.task_runs.kinds:
            self._out.put(("failed", delivery, f"unknown job kind {message.work!r}"))
            return
        self.task_runs.take(message, delivery.entry,
                            lambda kind, payload: self._out.put((kind, delivery, payload)))

    def _on_done(self, delivery: Delivery, result: JobResult) -> None:
        """Engine thread: hand the ending to the publisher; task runs waiting for room in
        this engine's queue retry."""
        self._out.put(("done", delivery, result))
        self.task_runs.notify_room(delivery.entry.id)

    def _on_step(self, delivery: Delivery, update: StepUpdate) -> None:
        """Engine thread: record the step and hand its event to the publisher."""
        task = delivery.entry.task
        if delivery.message.return_steps:
            delivery.trajectory.append(payloads.trajectory_entry(task, update))
        # "first": a plain sync solve, whose replica only times its first step
        if delivery.message.events == "all" or (delivery.message.events == "first"
                                                and not delivery.first_sent):
            delivery.first_sent = True
            self._out.put(("step", delivery, update))

    # --------------------------------------------------------------------- reclaiming

    def _reclaim(self) -> None:
        """Start this worker's own jobs it never started, then take over jobs idle longer
        than the reclaim time: their worker died (or hung)."""
        self._recover_own()
        idle_ms = int(self.settings.reclaim_idle_s * 1000)
        for stream, entry in self.streams.items():
            free = _free(entry)
            if free <= 0:
                continue
            reply = self.client.xautoclaim(stream, broker.GROUP, self.worker_id, idle_ms,
                                           start_id="0-0", count=free)
            for message_id, fields in reply[1]:
                if not fields:
                    continue  # deleted while pending
                pending = self.client.xpending_range(stream, broker.GROUP, min=message_id,
                                                     max=message_id, count=1)
                delivered = int(pending[0]["times_delivered"]) if pending else 1
                if delivered > self.settings.max_deliveries:
                    self._dead_letter(entry, message_id, fields, delivered)
                else:
                    log.warning("reclaimed job %s (delivery %d)", fields.get("job"), delivered)
                    self._take(entry, message_id, fields)

    def _recover_own(self) -> None:
        """Start this consumer's pending messages that it does not hold. Redis counts a
        message as delivered once it has run the read, so a read whose reply never arrived, or
        whose batch was cut short when Redis went away, leaves jobs pending under this name
        that nothing here runs. XPENDING and XRANGE leave a message's delivery count and idle
        time alone, so a hung worker's jobs still go idle for others to reclaim."""
        for stream, entry in self.streams.items():
            if _free(entry) <= 0:
                continue
            pending = self.client.xpending_range(stream, broker.GROUP, min="-", max="+",
                                                 count=1024, consumername=self.worker_id)
            for row in pending:
                message_id = str(row["message_id"])
                if message_id in self._held or _free(entry) <= 0:
                    continue
                found: Any = self.client.xrange(stream, min=message_id, max=message_id)
                if found:
                    log.warning("recovered job %s: delivered here, never started",
                                found[0][1].get("job"))
                    self._take(entry, message_id, found[0][1])

    def _dead_letter(self, entry: ModelEntry, message_id: str, fields: dict[str, str],
                     delivered: int) -> None:
        message = broker.JobMessage.from_fields(fields)
        failed_on = delivered - 1
        log.error("job %s failed on %d workers; dead-lettered", message.job_id, failed_on)
        dead: dict[Any, Any] = {**fields, "deliveries": str(failed_on),
                                "message_id": message_id}
        self.client.xadd(broker.dead_letter_key(message.task, message.model), dead,
                         maxlen=broker.DEAD_LETTER_MAXLEN, approximate=True)
        error = errors.internal(f"job failed on {failed_on} workers (delivered "
                                f"{failed_on} times without an answer); moved to the "
                                "dead-letter stream")
        body = error.to_problem(message.request_id, self.settings.problem_base_uri)
        keys, args = broker.finish_args(message, "solve.failed", body, self.settings.job_ttl_s,
                                        message_id)
        self._finish(keys=keys, args=args)

    # ------------------------------------------------------------------------ publishing

    def _publish_forever(self, stop: threading.Event) -> None:
        """Publisher thread: write queued events in pipelined batches until stopped and idle."""
        while not (stop.is_set() and self._out.empty() and self._idle()):
            try:
                first = self._out.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < 512:
                try:
                    batch.append(self._out.get_nowait())
                except queue.Empty:
                    break
            try:
                self._publish(batch, stop)
            except Exception:  # the thread must outlive any one batch, or every job hangs
                log.exception("publishing %d event(s) failed", len(batch))

    def _publish(self, batch: list[tuple[str, Delivery, Any]], stop: threading.Event) -> None:
        """Write a batch. When Redis is unreachable, step events are dropped (a reader sees a
        gap, never a wrong step) and the terminal ones are retried with backoff until Redis
        takes them: a result is never thrown away. Only a worker stopping for longer than its
        shutdown timeout gives up, leaving those jobs pending for another worker to redo."""
        try:
            self._pipeline(batch).execute()
            self._release(batch)
            return
        except redis.RedisError as exc:
            log.warning("could not publish %d event(s) (%s); retrying the results", len(batch),
                        exc)
        finals = [item for item in batch if item[0] not in ("step", "event")]
        backoff, give_up_at = 0.2, None
        while finals:
            if stop.is_set():
                give_up_at = give_up_at or time.monotonic() + self.settings.shutdown_timeout_s
                if time.monotonic() >= give_up_at:
                    log.error("stopping with %d unpublished result(s); their jobs stay pending "
                              "for another worker", len(finals))
                    return
            time.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)
            try:
                self._pipeline(finals).execute()
            except redis.RedisError:
                continue
            log.info("published %d result(s) after a Redis outage", len(finals))
            self._release(finals)
            return

    def _release(self, published: list[tuple[str, Delivery, Any]]) -> None:
        """Jobs whose ending Redis now holds (and whose message it acked) are no longer held."""
        for kind, delivery, _ in published:
            if kind not in ("step", "event"):
                self._held.discard(delivery.message_id)

    def _pipeline(self, batch: list[tuple[str, Delivery, Any]]) -> Any:
        ttl = max(1, int(self.settings.job_ttl_s))
        pipe = self.client.pipeline(transaction=False)
        for kind, delivery, payload in batch:
            message = delivery.message
            if kind in ("event", "end"):
                self._task_event(pipe, delivery, kind, payload, ttl)
                continue
            if kind == "step":
                data = payloads.step_data(delivery.entry.task, payload)
                key = broker.events_key(message.job_id)
                fields: dict[Any, Any] = broker.event_fields("solve.step", data, payload.step)
                pipe.xadd(key, fields,
                          maxlen=broker.EVENT_MAXLEN, approximate=False)
                pipe.expire(key, ttl)
                continue
            name, body = (self._terminal(delivery, payload) if kind == "done"
                          else ("solve.failed", self._problem(message, str(payload))))
            keys, args = broker.finish_args(message, name, body, ttl, delivery.message_id)
            self._finish(keys=keys, args=args, client=pipe)
            if kind == "done":
                self._cache(pipe, delivery, payload)
        return pipe

    def _task_event(self, pipe: Any, delivery: Delivery, kind: str,
                    payload: tuple[str, dict[str, Any]], ttl: int) -> None:
        """A task run's event, or its ending (which acks its message)."""
        name, data = payload
        if kind == "end":
            keys, args = broker.finish_args(delivery.message, name, data, ttl,
                                            delivery.message_id, broker.TASK_EVENT_MAXLEN)
            self._finish(keys=keys, args=args, client=pipe)
            return
        key = broker.events_key(delivery.message.job_id)
        pipe.xadd(key, broker.event_fields(name, data, None), maxlen=broker.TASK_EVENT_MAXLEN,
                  approximate=False)
        pipe.expire(key, ttl)

    def _terminal(self, delivery: Delivery, result: JobResult) -> tuple[str, dict[str, Any]]:
        """The job's terminal event, as any runner ends a job."""
        entry = delivery.entry
        ending = payloads.ending_of(delivery.message, entry.task, result, self.settings,
                                    puzzle=delivery.cells, calibration=entry.calibration,
                                    trajectory=delivery.trajectory)
        return ending.name, ending.data

    def _problem(self, message: broker.JobMessage, detail: str) -> dict[str, Any]:
        return errors.internal(detail).to_problem(message.request_id,
                                                  self.settings.problem_base_uri)

    def _cache(self, pipe: Any, delivery: Delivery, result: JobResult) -> None:
        """Store a verified answer under its symmetry class."""
        if not self.settings.cache_enabled or result.status != "solved":
            return
        message, entry = delivery.message, delivery.entry
        key = cache.cache_key(entry.task, delivery.cells, entry.checkpoint.sha256,
                              message.max_steps, message.halting, message.attempts,
                              message.search_key)
        value = cache.answer_value(key, result)
        if value is not None:
            pipe.set(key.key, value, ex=max(1, int(self.settings.cache_ttl_s)))

    # ------------------------------------------------------------------------- shutdown

    def _idle(self) -> bool:
        return not self.task_runs and not any(e.engine.busy for e in self.streams.values())

    def _wind_down(self, publisher: threading.Thread) -> None:
        """Finish running jobs within the shutdown timeout; the rest stay pending for others."""
        deadline = time.monotonic() + self.settings.shutdown_timeout_s
        while not self._idle() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.task_runs.abandon_all()
        publisher.join(timeout=5.0)
        self.task_runs.stop()
        with contextlib.suppress(redis.RedisError):
            self.client.delete(broker.worker_key(self.worker_id))
        log.info("worker %s stopped", self.worker_id)


def _free(entry: ModelEntry) -> int:
    """Jobs an engine can start now without queueing behind others."""
    return entry.engine.free_slots - entry.engine.queue_depth

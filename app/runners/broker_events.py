"""Following many jobs' Redis event streams with one blocking XREAD (one connection): the
broker runner's event reader.

Boundaries: asyncio redis-py only; no FastAPI. Events go to the `deliver` callback unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app import broker
from app.jobs import TrackedJob

log = logging.getLogger(__name__)
Deliver = Callable[[TrackedJob, str, dict[str, Any], int | None], None]
# A new follower waits at most this long for the reader's current XREAD to return.
_READ_BLOCK_MS = 100
_READ_COUNT = 100
# A followed job whose event stream and result are both missing this long (two checks at least
# this far apart) is lost: Redis restarted without its data.
_LOST_AFTER_S = 5.0


@dataclass
class _Followed:
    record: TrackedJob
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

    async def follow(self, record: TrackedJob, last: str, end: float) -> None:
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

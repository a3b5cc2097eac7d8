"""The Redis key layout and wire format shared by API replicas and workers in broker mode.

Boundaries: this module knows key names, message fields and the one atomic "finish a job" script;
it owns no connection and no loop. `app.runners.broker` (API side, asyncio) and `app.broker_worker`
(worker side, threads) build on it. No FastAPI and no torch here.

Key layout (every key is prefixed `trm:`):

| key | type | written by | meaning |
|---|---|---|---|
| `q:{task}:{model}` | stream, group `workers` | API | jobs (puzzles, task work) awaiting a worker |
| `dlq:{task}:{model}` | stream | worker | jobs delivered more than `TRM_MAX_DELIVERIES` times |
| `ev:{job}` | stream (MAXLEN, EXPIRE) | API, worker | the job's SSE events, for any replica |
| `res:{job}` | string (EX) | first finisher | the terminal event; existing = finished |
| `job:{job}` | hash (EX) | API | metadata of an addressable job, for other replicas |
| `depth:{task}:{model}` | counter | API +1 / finisher -1 | jobs admitted and not yet finished |
| `worker:{id}` | string (EX) | worker | heartbeat: the models a live worker serves |
| `cache:{sha256}` | string (EX) | worker | a verified answer in the puzzle's canonical frame |
| channel `cancel` | pub/sub | API | job ids to cancel on whichever worker runs them |
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from trm_core.engine import SearchConfig

PREFIX = "trm:"
GROUP = "workers"
CANCEL_CHANNEL = f"{PREFIX}cancel"
# Events kept per job stream: accepted + 16 steps + terminal, with room for one restart.
EVENT_MAXLEN = 64
# Events kept per stream of a task's own job kind: ARC writes one per version (256 at most by
# default) and one per 10 fit steps, and a follower must never find them trimmed before it read.
TASK_EVENT_MAXLEN = 4096
# Dead-lettered jobs kept for inspection (approximate trim: the oldest go first).
DEAD_LETTER_MAXLEN = 10_000
TERMINAL_EVENTS = frozenset({"solve.completed", "solve.failed", "solve.cancelled"})


def queue_key(task: str, model: str) -> str:
    return f"{PREFIX}q:{task}:{model}"


def dead_letter_key(task: str, model: str) -> str:
    return f"{PREFIX}dlq:{task}:{model}"


def events_key(job_id: str) -> str:
    return f"{PREFIX}ev:{job_id}"


def result_key(job_id: str) -> str:
    return f"{PREFIX}res:{job_id}"


def meta_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def depth_key(task: str, model: str) -> str:
    return f"{PREFIX}depth:{task}:{model}"


def worker_key(worker_id: str) -> str:
    return f"{PREFIX}worker:{worker_id}"


WORKER_PATTERN = f"{PREFIX}worker:*"

# Finish a job exactly once. SET NX on the result key decides the winner among a worker, a
# reclaiming worker and an API replica cancelling; only the winner appends the terminal event and
# lowers the depth counter. Anyone holding the queue message acks and deletes it either way
# (Redis 7.0 has no XACKDEL). KEYS: res, ev, depth, queue. ARGV: terminal json, ttl, event name,
# event data, maxlen, group, message id ('' when the caller holds none). Returns 1 for the winner.
FINISH_SCRIPT = """
local won = 0
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '*', 'n', ARGV[3], 'i', '', 'd', ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  if tonumber(redis.call('DECR', KEYS[3])) < 0 then redis.call('SET', KEYS[3], 0) end
  won = 1
end
if ARGV[7] ~= '' then
  -- pcall: after a Redis restart that lost the queue, the message (and its group) may be gone
  redis.pcall('XACK', KEYS[4], ARGV[6], ARGV[7])
  redis.pcall('XDEL', KEYS[4], ARGV[7])
end
return won
"""


class JobKeys(Protocol):
    """What names a job's keys (a `JobMessage`, or the API's record of the job)."""

    @property
    def id(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def model(self) -> str: ...


def finish_args(job: JobKeys, name: str, data: dict[str, Any], ttl_s: float,
                message_id: str = "", maxlen: int = EVENT_MAXLEN
                ) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of `FINISH_SCRIPT` for one terminal event (the stream trimmed to
    `maxlen` events)."""
    encoded = json.dumps(data, separators=(",", ":"))
    terminal = json.dumps({"name": name, "data": data}, separators=(",", ":"))
    keys = [result_key(job.id), events_key(job.id), depth_key(job.task, job.model),
            queue_key(job.task, job.model)]
    return keys, [terminal, max(1, int(ttl_s)), name, encoded, maxlen, GROUP, message_id]


def event_fields(name: str, data: dict[str, Any], event_id: int | None) -> dict[Any, Any]:
    """One entry of a job's event stream: name, SSE id ('' lets the reader number it), data."""
    return {"n": name, "i": "" if event_id is None else str(event_id),
            "d": json.dumps(data, separators=(",", ":"))}


def decode_event(fields: dict[str, str]) -> tuple[str, dict[str, Any], int | None]:
    """The inverse of `event_fields`."""
    raw_id = fields.get("i", "")
    return fields["n"], json.loads(fields["d"]), int(raw_id) if raw_id else None


@dataclass(frozen=True)
class JobMessage:
    """A job on a queue stream: everything a worker needs, nothing it must look up.

    `deadline` and `created_at` are wall-clock (epoch seconds) because they cross machines; each
    side turns them into its own monotonic clock. `events` is "all" when someone may read step
    events, else "first" (the replica times the first step). `work` is "puzzle" (the puzzle
    fields say what to solve) or the name of a task's job kind, whose work `spec` carries as
    that kind encodes it."""

    job_id: str
    kind: str
    task: str
    model: str
    request_id: str
    puzzle: list[int]
    max_steps: int
    halting: str
    attempts: int
    latent_noise: float
    deadline: float
    events: str
    return_steps: bool
    budget_steps: int = 0  # verified search's slot-steps; 0 = the single pass
    search_attempts: int = 1
    search_round_steps: int = 0
    seed: int = 0
    work: str = "puzzle"
    spec: str = ""
    created_at: float = 0.0  # 0: unknown (the worker counts from when it took the job)

    @property
    def id(self) -> str:
        return self.job_id

    @property
    def search_key(self) -> str:
        """The search options as part of a result-cache key."""
        return f"{self.budget_steps}/{self.search_attempts}/{self.search_round_steps}/{self.seed}"

    def search(self) -> SearchConfig | None:
        if self.budget_steps <= 0:
            return None
        return SearchConfig(budget_steps=self.budget_steps, attempts=self.search_attempts,
                            round_steps=self.search_round_steps)

    def to_fields(self) -> dict[Any, Any]:
        return {"job": self.job_id, "kind": self.kind, "task": self.task, "model": self.model,
                "request_id": self.request_id,
                "puzzle": "".join(chr(48 + v) for v in self.puzzle),
                "max_steps": str(self.max_steps), "halting": self.halting,
                "attempts": str(self.attempts), "latent_noise": repr(self.latent_noise),
                "deadline": repr(self.deadline), "events": self.events,
                "return_steps": "1" if self.return_steps else "0",
                "budget_steps": str(self.budget_steps),
                "search_attempts": str(self.search_attempts),
                "search_round_steps": str(self.search_round_steps), "seed": str(self.seed),
                "work": self.work, "spec": self.spec, "created_at": repr(self.created_at)}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> JobMessage:
        return cls(job_id=fields["job"], kind=fields["kind"], task=fields["task"],
                   model=fields["model"], request_id=fields["request_id"],
                   puzzle=[ord(ch) - 48 for ch in fields["puzzle"]],
                   max_steps=int(fields["max_steps"]), halting=fields["halting"],
                   attempts=int(fields["attempts"]), latent_noise=float(fields["latent_noise"]),
                   deadline=float(fields["deadline"]), events=fields["events"],
                   return_steps=fields["return_steps"] == "1",
                   budget_steps=int(fields.get("budget_steps", 0)),
                   search_attempts=int(fields.get("search_attempts", 1)),
                   search_round_steps=int(fields.get("search_round_steps", 0)),
                   seed=int(fields.get("seed", 0)), work=fields.get("work", "puzzle"),
                   spec=fields.get("spec", ""),
                   created_at=float(fields.get("created_at", 0.0)))

    def remaining_s(self) -> float:
        """Seconds until the deadline on this machine's wall clock (negative once passed)."""
        return self.deadline - time.time()


def heartbeat_value(worker_id: str, models: list[str], pid: int) -> str:
    return json.dumps({"id": worker_id, "models": models, "pid": pid, "at": time.time()})


def heartbeat_models(raw: str | bytes | None) -> list[str]:
    """The models a heartbeat announces; a malformed one announces none."""
    if not raw:
        return []
    try:
        models = json.loads(raw).get("models", [])
    except (ValueError, AttributeError):
        return []
    return [str(m) for m in models]

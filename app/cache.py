"""The result cache: verified answers keyed by the puzzle's symmetry class.

Two puzzles that are relabellings of each other (Sudoku: digit permutations, band and stack
swaps, transposition) share one canonical form, so one solve answers all of them. The key also
holds the model's content hash and every option that can change the answer (max_steps, halting,
attempts); the value is the answer mapped into the canonical frame, and a hit maps it back through
the requesting puzzle's own symmetry. Only answers that verified are stored, and a hit is
verified again against the puzzle before it is served.

Where answers are kept depends on the runner: in Redis for the broker runner (API replicas
look up, broker workers store), in a bounded in-process `MemoryAnswers` for the local runner.
Boundaries: keys, values and the in-process store; no FastAPI, no metrics (callers count hits
and misses), no Redis connection (callers bring theirs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.broker import PREFIX
from trm_core.engine import JobResult
from trm_core.tasks.base import Symmetry, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheKey:
    """Where a puzzle's answer lives, and how to map answers between its frame and the key's."""

    key: str
    symmetry: Symmetry


@dataclass(frozen=True)
class CachedAnswer:
    """An answer served from the cache, already in the requesting puzzle's frame."""

    answer: np.ndarray
    steps_used: int
    halted_early: bool
    confidence: float
    q_halt: float


def cache_key(task: Task, cells: np.ndarray, model_sha256: str, max_steps: int, halting: str,
              attempts: int, search: str = "") -> CacheKey:
    """The key of a puzzle under a model and the options that change its answer (`search`:
    budget and seed; CPU: a few milliseconds for Sudoku, so callers on an event loop run it in
    a thread)."""
    canonical, symmetry = task.canonical_form(cells)
    digest = hashlib.sha256()
    for part in (task.name, model_sha256, str(max_steps), halting, str(attempts), search):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(canonical)
    return CacheKey(f"{PREFIX}cache:{digest.hexdigest()}", symmetry)


def encode(key: CacheKey, answer: np.ndarray, steps_used: int, halted_early: bool,
           confidence: float, q_halt: float) -> str:
    """The stored value: the answer in the canonical frame plus the numbers a result shows."""
    canonical = np.asarray(key.symmetry.apply(np.asarray(answer)), dtype=np.int64)
    return json.dumps({"answer": canonical.tolist(), "steps_used": steps_used,
                       "halted_early": halted_early, "confidence": confidence,
                       "q_halt": q_halt})


def decode(task: Task, cells: np.ndarray, key: CacheKey, raw: str | bytes) -> CachedAnswer | None:
    """The cached answer mapped into `cells`' frame, or None when it does not verify (a stale
    or corrupt entry is a miss, never a wrong answer)."""
    try:
        body: dict[str, Any] = json.loads(raw)
        canonical = np.asarray(body["answer"], dtype=np.int8)
        answer = np.asarray(key.symmetry.invert(canonical), dtype=np.int8)
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed cache entry %s", key.key)
        return None
    if answer.shape != cells.shape or not task.verify(cells, answer):
        log.warning("cache entry %s does not verify against the puzzle; ignored", key.key)
        return None
    return CachedAnswer(answer, int(body["steps_used"]), bool(body["halted_early"]),
                        float(body["confidence"]), float(body["q_halt"]))


def answer_value(key: CacheKey, result: JobResult) -> str | None:
    """What to store for a finished job: its answer when it verified, else None."""
    if result.status != "solved" or not result.valid or result.answer is None:
        return None
    return encode(key, result.answer, result.steps_used, result.halted_early,
                  result.confidence, result.q_halt)


class MemoryAnswers:
    """The in-process answer store (no Redis): the `max_entries` most recently used answers,
    each for at most `ttl_s`. Event-loop thread only."""

    def __init__(self, max_entries: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._answers: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> str | None:
        stored = self._answers.get(key)
        if stored is None:
            return None
        expires, value = stored
        if self._clock() >= expires:
            del self._answers[key]
            return None
        self._answers.move_to_end(key)
        return value

    def put(self, key: str, value: str) -> None:
        if self.max_entries <= 0:
            return
        self._answers[key] = (self._clock() + self.ttl_s, value)
        self._answers.move_to_end(key)
        while len(self._answers) > self.max_entries:
            self._answers.popitem(last=False)

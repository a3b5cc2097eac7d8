"""The engine's public data types: jobs in, step updates and results out.

Import them from `trm_core.engine`, which re-exports every name here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Halting = Literal["auto", "never"]
JobStatus = Literal["solved", "unsolved", "cancelled", "timeout", "failed"]


class QueueFull(RuntimeError):
    """`submit` refused a job because the queue holds `max_queue` jobs already."""


@dataclass
class StepUpdate:
    """What one supervision step did to one job (its leading attempt)."""

    job_id: str
    step: int  # 1-based supervision step
    max_steps: int
    answer: np.ndarray  # (seq_len,) int8 cells of the leading attempt, in the puzzle's own frame
    changed_cells: list[int]  # flat indices whose value differs from the previous step's answer
    cell_confidence: np.ndarray  # (seq_len,) float32, max softmax probability per cell
    confidence: float  # mean of cell_confidence over the cells the model fills in
    q_halt: float  # sigmoid(halt logit) of the leading attempt
    valid: bool  # task.verify(puzzle, answer)
    attempt: int  # index of the leading attempt
    elapsed_ms: float  # since submit

    @property
    def changed(self) -> int:
        return len(self.changed_cells)


@dataclass
class JobResult:
    """The final word on a job; `on_done` receives exactly one per job."""

    job_id: str
    status: JobStatus  # solved = answer verifies; unsolved = it does not (still an answer)
    answer: np.ndarray | None  # (seq_len,) int8 cells, None when cancelled/timeout/failed early
    valid: bool
    steps_used: int
    halted_early: bool  # stopped before max_steps
    confidence: float
    q_halt: float
    attempt: int  # which attempt produced `answer`
    attempts: int
    queue_ms: float
    compute_ms: float
    total_ms: float
    error: str | None = None  # for failed / timeout: what happened


@dataclass
class Job:
    """One puzzle to solve. Built by the caller (already parsed by the task), then submitted."""

    puzzle: np.ndarray  # (seq_len,) int8 cells
    max_steps: int = 16
    halting: Halting = "auto"  # auto: halting head says stop, or answer verifies and is stable
    attempts: int = 1  # test-time search: slots used by this job
    latent_noise: float = 0.0  # std of noise added to the initial z of attempts > 0
    deadline: float | None = None  # time.monotonic() value; past it the job ends as "timeout"
    on_step: Callable[[StepUpdate], None] | None = None  # engine thread; must not block
    on_done: Callable[[JobResult], None] | None = None  # engine thread; exactly once
    seed: int | None = None  # for the attempts' symmetries and noise
    puzzle_id: int = 0  # row of the puzzle-embedding table (ARC versions); 0 = blank
    # (puzzle_emb_dim,) float32 used instead of the `puzzle_id` row: rows fitted at test time
    # are fed this way, so the checkpoint's table never grows.
    puzzle_vector: np.ndarray | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    submitted_at: float = 0.0  # set by Engine.submit


@dataclass
class TickStats:
    """Handed to `Engine.on_tick` after each supervision step over the batch."""

    batch_size: int  # active slots stepped
    duration_s: float
    queue_depth: int
    active_slots: int

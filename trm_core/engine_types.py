"""The engine's public data types: jobs in, step updates and results out.

Import them from `trm_core.engine`, which re-exports every name here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

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
    # A search's record (`trm_core.search`): budget, slot-steps used, what each round did.
    search: dict[str, Any] | None = None


@dataclass(frozen=True)
class SearchConfig:
    """How a search spends its budget. `budget_steps` = 0 means the single pass only."""

    @property
    def steps_per_round(self) -> int:
        return min(self.round_steps or self.max_steps, self.max_steps)

    # Defaults measured on held-out medium and hard Sudokus (README, "Verified search"): many
    # short rounds that each keep a quarter of the model's confident rule-abiding cells beat
    # few long ones by far; four symmetric attempts a round keep hard puzzles from stalling.
    budget_steps: int = 512  # slot-steps across every round, the first pass included
    attempts: int = 4  # attempts per search round (attempt 0 unchanged, others symmetric)
    latent_noise: float = 0.1  # std of the noise on the initial z of attempts > 0
    keep_fraction: float = 0.25  # share of the model's rule-abiding cells kept as givens (0: none)
    max_steps: int = 16  # supervision steps of the first pass
    round_steps: int = 4  # supervision steps of each later round; 0 = max_steps

    def __post_init__(self) -> None:
        if self.budget_steps < 0:
            raise ValueError(f"budget_steps must be >= 0, got {self.budget_steps}")
        if self.round_steps < 0:
            raise ValueError(f"round_steps must be >= 0, got {self.round_steps}")
        if self.attempts < 1 or self.max_steps < 1:
            raise ValueError(f"attempts and max_steps must be >= 1, got {self.attempts} and "
                             f"{self.max_steps}")
        if not 0 <= self.keep_fraction <= 1:
            raise ValueError(f"keep_fraction must be in [0, 1], got {self.keep_fraction}")
        if self.latent_noise < 0:
            raise ValueError(f"latent_noise must be >= 0, got {self.latent_noise}")


@dataclass
class Job:
    """One puzzle to solve. Built by the caller (already parsed by the task), then submitted."""

    puzzle: np.ndarray  # (seq_len,) int8 cells
    max_steps: int = 16
    halting: Halting = "auto"  # auto: halting head says stop, or answer verifies and is stable
    attempts: int = 1  # test-time search: slots used by this job
    latent_noise: float = 0.0  # std of noise added to the initial z of attempts > 0
    deadline: float | None = None  # engine clock (time.monotonic) value; past it: "timeout"
    on_step: Callable[[StepUpdate], None] | None = None  # engine thread; must not block
    on_done: Callable[[JobResult], None] | None = None  # engine thread; exactly once
    seed: int | None = None  # for the attempts' symmetries and noise
    puzzle_id: int = 0  # row of the puzzle-embedding table (ARC versions); 0 = blank
    # (puzzle_emb_dim,) float32 used instead of the `puzzle_id` row: rows fitted at test time
    # are fed this way, so the checkpoint's table never grows.
    puzzle_vector: np.ndarray | None = None
    # Verified search (`trm_core.search`): when set with a budget, the engine runs the job as
    # rounds until an answer verifies or the budget is spent; the caller still sees one job.
    search: SearchConfig | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    submitted_at: float = 0.0  # set by Engine.submit


@dataclass
class TickStats:
    """Handed to `Engine.on_tick` after each supervision step over the batch."""

    batch_size: int  # active slots stepped
    duration_s: float
    queue_depth: int
    active_slots: int

"""Slot storage and per-job bookkeeping for `trm_core.engine`.

`SlotPool` owns the persistent carry of every slot and runs one supervision step over a subset of
them; `JobRecord` and `Attempt` hold what the engine knows about one job between ticks;
`validate_job` checks a job's options at submit. Apart from `validate_job`, everything here runs
on the engine's owner thread only; the engine does the locking.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trm_core.engine_types import Job, JobResult, JobStatus, StepUpdate
from trm_core.model import TRM, State
from trm_core.solve import computing, q_halt, start, step
from trm_core.tasks.base import Symmetry, Task

logger = logging.getLogger(__name__)


@dataclass
class Readout:
    """One step's outputs for the stepped rows, already on the host as numpy."""

    ids: np.ndarray  # (B, seq_len) int64 argmax tokens
    probs: np.ndarray  # (B, seq_len) float32 max softmax probability
    halt_logits: np.ndarray  # (B,) float32


class SlotPool:
    """`size` rows of carry (y, z) and cached input embedding x, each (size, L, D) on `device`.

    A slot is free when its owner is None. All tensors are created and updated under
    `torch.inference_mode`, so they never record autograd history.
    """

    def __init__(self, model: TRM, size: int, device: torch.device,
                 autocast_dtype: torch.dtype | None) -> None:
        self.model = model
        self.size = size
        self.device = device
        self.dtype = next(model.parameters()).dtype  # the carry's dtype, autocast or not
        self.autocast_dtype = autocast_dtype
        self.owner: list[Any] = [None] * size
        shape = (size, model.config.total_len, model.config.hidden_size)
        with torch.inference_mode():
            self.y = torch.zeros(shape, device=device, dtype=self.dtype)
            self.z = torch.zeros(shape, device=device, dtype=self.dtype)
            self.x = torch.zeros(shape, device=device, dtype=self.dtype)

    @property
    def free_count(self) -> int:
        return sum(owner is None for owner in self.owner)

    def occupied(self) -> list[int]:
        """Indices of owned slots, ascending."""
        return [i for i, owner in enumerate(self.owner) if owner is not None]

    def take(self, owner: Any) -> int:
        """Claim the lowest free slot for `owner`; the caller checked that one is free."""
        slot = self.owner.index(None)
        self.owner[slot] = owner
        return slot

    def release(self, slot: int | None) -> None:
        if slot is not None:
            self.owner[slot] = None

    def _compute(self) -> contextlib.AbstractContextManager[None]:
        """inference_mode, plus autocast when the engine was given a dtype for it."""
        return computing(self.device, self.autocast_dtype)

    def load(self, slots: list[int], tokens: np.ndarray, z_noise: torch.Tensor | None,
             puzzle_id: int = 0, puzzle_vector: np.ndarray | None = None) -> None:
        """Start fresh carries in `slots` for puzzles `tokens` (n, seq_len); `z_noise` (n, L, D)
        is added to the initial z when given; `puzzle_id` picks the puzzle-embedding row, or
        `puzzle_vector` (puzzle_emb_dim,) replaces it. x is embedded here once and reused every
        step."""
        with torch.inference_mode():  # embedding only: autocast would change nothing here
            index = torch.tensor(slots, device=self.device, dtype=torch.long)
            token_tensor = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
            ids = torch.full((len(slots),), puzzle_id, dtype=torch.long, device=self.device)
            vectors = None
            if puzzle_vector is not None:
                row = torch.from_numpy(np.ascontiguousarray(puzzle_vector, dtype=np.float32))
                vectors = row.to(self.device).expand(len(slots), -1)  # (n, puzzle_emb_dim)
            state, x = start(self.model, token_tensor.to(self.device), ids, vectors, self.dtype)
            z = state.z if z_noise is None else state.z + z_noise.to(self.device, self.dtype)
            self.x.index_copy_(0, index, x)
            self.y.index_copy_(0, index, state.y)
            self.z.index_copy_(0, index, z)

    def step(self, rows: list[int]) -> Readout:
        """One supervision step for `rows` (ascending slot indices); the new carry is written back.

        Only the stepped rows are computed: they are gathered into a contiguous batch, unless
        every slot is stepped, in which case the buffers are used as they are.
        """
        full = len(rows) == self.size
        with self._compute():
            if full:
                y, z, x = self.y, self.z, self.x  # (S, L, D) each
            else:
                index = torch.tensor(rows, device=self.device, dtype=torch.long)
                y, z, x = (t.index_select(0, index) for t in (self.y, self.z, self.x))  # (B, L, D)
            carry, readout = step(self.model, State(y, z), x)
            if full:
                self.y, self.z = carry
            else:
                self.y.index_copy_(0, index, carry.y)
                self.z.index_copy_(0, index, carry.z)
        # One host transfer per output per tick; everything after this is numpy.
        return Readout(readout.tokens.cpu().numpy(), readout.probs.cpu().numpy(),
                       readout.halt_logits.cpu().numpy())

    def warmup(self, tokens: np.ndarray) -> None:
        """One step over a full batch of `tokens` (size, seq_len), touching no slot."""
        with self._compute():
            token_tensor = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
            state, x = start(self.model, token_tensor.to(self.device), dtype=self.dtype)
            step(self.model, state, x)[1].probs.cpu()


def position_source(symmetry: Symmetry, seq_len: int) -> np.ndarray | None:
    """Where each puzzle-frame position reads from in the model frame, (seq_len,) or None.

    `symmetry.invert` moves cells and may also relabel values, so it cannot be used on
    probabilities directly. Inverting a one-hot probe per position recovers the pure position
    permutation (it assumes blank 0 stays blank, as value relabellings do). Returns None when the
    probe does not reveal a permutation.
    """
    probe = np.eye(seq_len, dtype=np.int8)  # row i: only model-frame position i is non-blank
    landed = np.asarray(symmetry.invert(probe)) != 0  # (seq_len, seq_len)
    if not ((landed.sum(0) == 1).all() and (landed.sum(1) == 1).all()):
        return None
    destination = landed.argmax(1)  # model position i -> puzzle position
    source = np.empty(seq_len, dtype=np.intp)
    source[destination] = np.arange(seq_len)
    return source


def validate_job(job: Job, seq_len: int, max_steps: int, slots: int,
                 puzzle_rows: int = 1, puzzle_emb_dim: int = 0) -> np.ndarray:
    """The job's puzzle as (seq_len,) int8 cells; ValueError naming the first bad option."""
    if not _is_int(job.max_steps) or not 1 <= job.max_steps <= max_steps:
        raise ValueError(f"max_steps must be an integer in 1..{max_steps}, got {job.max_steps!r}")
    if not _is_int(job.attempts) or not 1 <= job.attempts <= slots:
        raise ValueError(f"attempts must be an integer in 1..{slots} (the engine's slots), "
                         f"got {job.attempts!r}")
    if job.halting not in ("auto", "never"):
        raise ValueError(f"halting must be 'auto' or 'never', got {job.halting!r}")
    if not _is_int(job.puzzle_id) or not 0 <= job.puzzle_id < puzzle_rows:
        raise ValueError(f"puzzle_id must be an integer in 0..{puzzle_rows - 1}, "
                         f"got {job.puzzle_id!r}")
    _check_puzzle_vector(job.puzzle_vector, puzzle_emb_dim)
    noise = job.latent_noise
    if not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"latent_noise must be a finite number >= 0, got {noise!r}")
    puzzle = np.asarray(job.puzzle)
    if puzzle.shape != (seq_len,) or puzzle.dtype.kind not in "iu":
        raise ValueError(f"puzzle must be ({seq_len},) integer cells, got shape {puzzle.shape} "
                         f"of {puzzle.dtype}")
    return puzzle.astype(np.int8)


def _check_puzzle_vector(vector: np.ndarray | None, puzzle_emb_dim: int) -> None:
    """A given puzzle vector must be a finite (puzzle_emb_dim,) float array."""
    if vector is None:
        return
    if puzzle_emb_dim == 0:
        raise ValueError("puzzle_vector given, but the model has no puzzle embedding")
    v = np.asarray(vector)
    if v.shape != (puzzle_emb_dim,) or v.dtype.kind != "f" or not np.isfinite(v).all():
        raise ValueError(f"puzzle_vector must be ({puzzle_emb_dim},) finite floats, got shape "
                         f"{v.shape} of {v.dtype}")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass
class Attempt:
    """One slot's worth of a job: the puzzle as given (index 0) or under a symmetry."""

    index: int
    job_id: str
    symmetry: Symmetry | None = None
    source: np.ndarray | None = None  # (seq_len,) position map back to the puzzle frame
    slot: int | None = None  # None once stopped
    answer: np.ndarray | None = None  # (seq_len,) int8, puzzle frame, latest step
    cell_confidence: np.ndarray | None = None  # (seq_len,) float32, puzzle frame
    confidence: float = 0.0
    q_halt: float = 0.0
    valid: bool = False
    stopped_at: int | None = None  # step at which it stopped, None while running

    def to_puzzle_frame(self, cells: np.ndarray,
                        probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map one row's cells and probabilities (seq_len,) from the model frame back."""
        if self.symmetry is None:
            return cells, probs
        cells = np.asarray(self.symmetry.invert(cells), dtype=np.int8)
        return cells, probs if self.source is None else probs[self.source]


@dataclass
class JobRecord:
    """A submitted job: its normalised puzzle and, once admitted, its attempts and progress."""

    job: Job
    puzzle: np.ndarray  # (seq_len,) int8
    fill_mask: np.ndarray  # (seq_len,) bool: cells the model fills in, for `confidence`
    attempts: list[Attempt] = field(default_factory=list)
    admitted_at: float | None = None
    steps: int = 0
    shown: np.ndarray | None = None  # leading answer of the previous step
    winner: Attempt | None = None  # first attempt that stopped with a verified answer

    @property
    def done(self) -> bool:
        return self.winner is not None or all(a.stopped_at is not None for a in self.attempts)

    def record(self, attempt: Attempt, task: Task, cells: np.ndarray, probs: np.ndarray,
               halt_logit: float) -> bool:
        """Store one step's output for `attempt` (model-frame row) and decide whether it stops.

        Returns True when the attempt stopped at this step; the caller frees its slot.
        """
        previous = attempt.answer
        answer, confidence = attempt.to_puzzle_frame(cells, probs)
        answer = task.keep_givens(self.puzzle, answer)  # the user's givens are never changed
        attempt.answer, attempt.cell_confidence = answer, confidence
        attempt.confidence = float(confidence[self.fill_mask].mean())
        attempt.q_halt = q_halt(halt_logit)
        attempt.valid = bool(task.verify(self.puzzle, answer))
        if not self._should_stop(attempt, previous, halt_logit, task.can_verify):
            return False
        attempt.stopped_at = self.steps
        if attempt.valid and self.winner is None:
            self.winner = attempt
        return True

    def _should_stop(self, attempt: Attempt, previous: np.ndarray | None,
                     halt_logit: float, can_verify: bool) -> bool:
        """Auto halting. Where the task can check an answer, the check decides: an attempt stops
        early only with a verified answer, once the halting head agrees or the answer stopped
        changing (the head alone would stop some wrong answers that later steps fix). Where it
        cannot, the halting head decides."""
        if self.steps >= self.job.max_steps:
            return True
        if self.job.halting == "never":
            return False
        if not can_verify:
            return halt_logit > 0
        answer = attempt.answer
        stable = previous is not None and answer is not None and np.array_equal(previous, answer)
        return attempt.valid and (halt_logit > 0 or stable)

    def leading(self) -> Attempt | None:
        """The attempt to show: the winner, else verified first, then q_halt, then confidence;
        ties go to the lowest index. None before the first step."""
        if self.winner is not None:
            return self.winner
        stepped = [a for a in self.attempts if a.answer is not None]
        if not stepped:
            return None
        return max(stepped, key=lambda a: (a.valid, a.q_halt, a.confidence))

    def step_update(self, now: float) -> StepUpdate:
        """The update for the step just recorded; remembers its answer for the next diff.
        Step 1's changed cells are counted against the puzzle itself."""
        lead = self.leading()
        assert lead is not None and lead.answer is not None and lead.cell_confidence is not None
        previous = self.puzzle if self.shown is None else self.shown
        self.shown = lead.answer
        return StepUpdate(
            job_id=self.job.id, step=self.steps, max_steps=self.job.max_steps,
            answer=lead.answer, changed_cells=np.flatnonzero(lead.answer != previous).tolist(),
            cell_confidence=lead.cell_confidence, confidence=lead.confidence,
            q_halt=lead.q_halt, valid=lead.valid, attempt=lead.index,
            elapsed_ms=(now - self.job.submitted_at) * 1000.0)

    def result(self, status: JobStatus, error: str | None, now: float) -> JobResult:
        """The job's final result; the answer is the leading one, None if no step ran."""
        job, lead = self.job, self.leading()
        admitted = now if self.admitted_at is None else self.admitted_at
        ran = status in ("solved", "unsolved")  # only a finished run can halt early
        return JobResult(
            job_id=job.id, status=status,
            answer=None if lead is None or lead.answer is None else lead.answer.copy(),
            valid=lead is not None and lead.valid, steps_used=self.steps,
            halted_early=ran and self.steps < job.max_steps,
            confidence=0.0 if lead is None else lead.confidence,
            q_halt=0.0 if lead is None else lead.q_halt,
            attempt=0 if lead is None else lead.index, attempts=job.attempts,
            queue_ms=(admitted - job.submitted_at) * 1000.0,
            compute_ms=(now - admitted) * 1000.0,
            total_ms=(now - job.submitted_at) * 1000.0, error=error)

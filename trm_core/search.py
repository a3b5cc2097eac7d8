"""Verified search at test time: rounds of engine jobs that spend a budget of model steps on a
puzzle until an answer verifies.

Round 0 is the plain single pass. When its answer does not verify, later rounds run several
attempts (symmetric copies of the puzzle with latent noise) from the puzzle plus the model's own
most confident cells that break no rule ("confidence decimation"): fixing what the model is
sure of shrinks what it must still decide. A round whose answer has more conflicts than the best
so far backs off (keeps half as many cells); a better round becomes the new anchor. Every digit
comes from the model: the extra givens are model answers, and the final answer is checked
against the original puzzle by the task's rule check.

`SearchPlan` is a plain state machine (`next_job`, `observe`); `SearchRun` drives it on an
engine, which starts one for every job with `search` set, so the service, the broker worker and
evaluation (`Engine.solve_batch(..., search=...)`) run the same search.
Budgets count slot-steps: supervision steps x attempts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from trm_core.engine_types import Job, JobResult, QueueFull, SearchConfig, StepUpdate
from trm_core.tasks.base import Task

if TYPE_CHECKING:  # the engine runs searches itself (`Job.search`), so it imports this module
    from trm_core.engine import Engine

__all__ = ["Round", "SearchConfig", "SearchPlan", "SearchRun"]


@dataclass
class Round:
    """One engine job of a search: what it was given and what it gave back."""

    index: int
    extra_givens: int  # model cells added to the puzzle's givens
    attempts: int
    steps: int  # supervision steps the job ran
    valid: bool
    conflicts: int  # cells of its answer that break a rule (or -1 when unknown)

    @property
    def cost(self) -> int:
        return self.steps * self.attempts

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.index, "extra_givens": self.extra_givens,
                "attempts": self.attempts, "steps": self.steps, "valid": self.valid,
                "conflicts": self.conflicts}


@dataclass
class SearchPlan:
    """The search for one puzzle. Call `next_job` for the next round's job options (None when
    done), run it, and hand its result (and its last step update) to `observe`."""

    task: Task
    puzzle: np.ndarray  # (seq_len,) int8, the user's puzzle
    config: SearchConfig
    seed: int = 0
    # Round 0's own job fields (attempts, latent_noise, halting), e.g. a request's; default
    # one attempt with auto halting.
    first_round: dict[str, Any] = field(default_factory=dict)
    rounds: list[Round] = field(default_factory=list)
    best: JobResult | None = None
    best_conflicts: int = 1 << 30
    anchor: np.ndarray | None = None  # (seq_len,) answer decimation draws from
    anchor_confidence: np.ndarray | None = None  # (seq_len,) its per-cell confidence
    keep: float = 0.0
    stopped: bool = False  # set from outside (a cancel) to end the search after this round
    _pending_extra: int = 0

    def __post_init__(self) -> None:
        self.keep = self.config.keep_fraction

    @property
    def steps_used(self) -> int:
        return sum(r.cost for r in self.rounds)

    @property
    def solved(self) -> bool:
        return self.best is not None and self.best.valid

    def next_job(self) -> dict[str, Any] | None:
        """Job fields (puzzle, attempts, latent_noise, seed, max_steps, halting) for the next
        round, or None when the answer verified or the budget cannot pay for another round."""
        if self.solved or self.stopped:
            return None
        cfg, left = self.config, self.config.budget_steps - self.steps_used
        if not self.rounds:  # the first pass is paid whatever the budget
            return {**self._job(self.puzzle, 1, 0), **self.first_round}
        steps = cfg.steps_per_round
        attempts = min(cfg.attempts, left // steps)
        if attempts < 1:
            return None
        puzzle = self._decimated()
        return {**self._job(puzzle, attempts, int(np.count_nonzero(puzzle != self.puzzle))),
                "max_steps": steps}

    def _job(self, puzzle: np.ndarray, attempts: int, extra: int) -> dict[str, Any]:
        self._pending_extra = extra
        return {"puzzle": puzzle, "attempts": attempts, "max_steps": self.config.max_steps,
                "latent_noise": self.config.latent_noise if attempts > 1 else 0.0,
                "seed": self.seed * 1009 + len(self.rounds), "halting": "auto"}

    def _decimated(self) -> np.ndarray:
        """The puzzle plus the anchor's most confident rule-abiding model cells."""
        if self.anchor is None or self.anchor_confidence is None:
            return self.puzzle
        conflicts = self.task.conflicts(self.puzzle, self.anchor)
        if conflicts is None:  # no per-cell rule check: plain attempts, nothing kept
            return self.puzzle
        positions = np.flatnonzero((self.puzzle == 0) & (self.anchor != 0) & ~conflicts)
        count = math.floor(self.keep * len(positions))
        if count == 0:
            return self.puzzle
        order = np.argsort(-self.anchor_confidence[positions], kind="stable")
        chosen = positions[order[:count]]
        puzzle = self.puzzle.copy()
        puzzle[chosen] = self.anchor[chosen]
        return puzzle

    def observe(self, result: JobResult, last: StepUpdate | None) -> None:
        """Record a round's result; keep the best answer (verified first, then fewest
        conflicts) and move the anchor or back off."""
        answer = result.answer
        valid = answer is not None and self.task.verify(self.puzzle, answer)
        conflicts = self._conflict_count(answer)
        self.rounds.append(Round(len(self.rounds), self._pending_extra, result.attempts,
                                 result.steps_used, valid, conflicts))
        better = valid or (answer is not None and 0 <= conflicts < self.best_conflicts)
        if self.best is None or better:
            self.best, self.best_conflicts = result, conflicts if conflicts >= 0 else 1 << 30
            if answer is not None and last is not None:
                self.anchor, self.anchor_confidence = answer, last.cell_confidence
        elif self._pending_extra:
            self.keep /= 2  # the round with extra givens went wrong: trust fewer of them

    def _conflict_count(self, answer: np.ndarray | None) -> int:
        if answer is None:
            return -1
        conflicts = self.task.conflicts(self.puzzle, answer)
        return -1 if conflicts is None else int(conflicts.sum())

    def summary(self) -> dict[str, Any]:
        """The search's record for a result: steps spent and what each round did."""
        return {"budget_steps": self.config.budget_steps, "steps_used": self.steps_used,
                "rounds": [r.to_dict() for r in self.rounds]}


class SearchRun:
    """A search submitted to an engine, seen by its caller as the one job `template`: every
    round is an engine job with the template's id, deadline and callbacks, steps are numbered
    on across rounds, and `template.on_done` receives one result for the whole search (the best
    answer, every round's steps, the search record). Round 0 runs with the template's own
    attempts, noise and halting. Rounds are submitted from the engine's callbacks, on its
    thread. `Engine.submit` builds one for a job with `search` set."""

    def __init__(self, engine: Engine, task: Task, puzzle: np.ndarray, template: Job,
                 on_end: Callable[[str], None] = lambda job_id: None) -> None:
        assert template.search is not None
        config = replace(template.search, max_steps=template.max_steps)
        first = {"attempts": template.attempts, "latent_noise": template.latent_noise,
                 "halting": template.halting}
        self.plan = SearchPlan(task, puzzle, config, template.seed or 0, first)
        self.engine, self.template, self.on_end = engine, template, on_end
        self.offset = 0  # supervision steps of the rounds before this one
        self.last: StepUpdate | None = None
        self.first: JobResult | None = None
        self.started = 0.0

    def submit(self) -> None:
        """Queue round 0 (raises QueueFull or ValueError like `Engine.submit`)."""
        self.started = time.monotonic()
        fields = self.plan.next_job()
        assert fields is not None, "a fresh plan always has its first pass"
        self.engine.submit(self._round_job(fields))

    def _round_job(self, fields: dict[str, Any]) -> Job:
        template = self.template
        return Job(**fields, deadline=template.deadline, id=template.id,
                   on_step=self._on_step, on_done=self._on_done, puzzle_id=template.puzzle_id,
                   puzzle_vector=template.puzzle_vector)

    def _on_step(self, update: StepUpdate) -> None:
        self.last = update
        if self.template.on_step is not None:
            self.template.on_step(replace(update, step=self.offset + update.step,
                                          max_steps=self.offset + update.max_steps))

    def _on_done(self, result: JobResult) -> None:
        self.first = self.first or result
        if result.status not in ("solved", "unsolved"):
            self._deliver(replace(result, steps_used=self.offset + result.steps_used))
            return  # cancelled, timed out or failed: the search ends with it
        self.plan.observe(result, self.last)
        self.offset += result.steps_used
        self.last = None
        fields = self.plan.next_job()
        if fields is not None:
            try:
                self.engine.submit(self._round_job(fields))
                return
            except QueueFull:
                pass  # no room for another round: answer with the best so far
        if self.plan.stopped:
            self._deliver(replace(result, status="cancelled", steps_used=self.offset))
            return
        self._deliver(self._combined())

    def _combined(self) -> JobResult:
        best, first = self.plan.best, self.first
        assert best is not None and first is not None
        total_ms = (time.monotonic() - self.started) * 1000.0
        return replace(best, status="solved" if self.plan.solved else "unsolved",
                       valid=self.plan.solved, steps_used=self.offset,
                       halted_early=self.offset < self.plan.config.max_steps,
                       queue_ms=first.queue_ms, total_ms=total_ms,
                       compute_ms=total_ms - first.queue_ms, attempts=self.template.attempts,
                       search=self.plan.summary())

    def _deliver(self, result: JobResult) -> None:
        self.on_end(self.template.id)
        if self.template.on_done is not None:
            self.template.on_done(result)

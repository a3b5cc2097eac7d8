"""Translation between the API and the engine, as pure functions: the one module that builds
every wire body.

Inbound: a request's options checked against the chosen model (`check_options`) and a task's
`PuzzleError` as a 422 (`puzzle_error`). Outbound: the accepted, step, result, cancelled and
problem bodies, built from the engine's `StepUpdate` / `JobResult` and the task's formatting, so
the same bytes go to a sync response, a `solve.completed` event and a job's `result`, whichever
runner (or broker worker process) ran the job. An `Ending` is how a job ended (state, metrics
outcome, terminal event); `ending_of` makes one from the engine's final word and
`ending_from_event` from a terminal event read back from Redis. Task-specific fields (a maze's
path) come from the task's `extra_step` and `extra_result` hooks, so nothing here knows one task
from another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from app.broker import JobKeys
from app.cache import CachedAnswer
from app.errors import ApiError, internal, invalid, timeout, unavailable
from app.jobs import JobState
from app.schemas import AcceptedData, SolveRequest, StepData
from app.settings import Settings
from trm_core.calibration import Calibration
from trm_core.engine import JobResult, SearchConfig, StepUpdate
from trm_core.tasks.base import PuzzleError, Task

log = logging.getLogger(__name__)
SHUTDOWN_REASON = "shutdown"


class JobHeader(JobKeys, Protocol):
    """What a wire body says about its job (a service `TrackedJob` or a worker's message):
    its keys' names and these."""

    @property
    def max_steps(self) -> int: ...
    @property
    def request_id(self) -> str: ...
    @property
    def return_steps(self) -> bool: ...


@dataclass(frozen=True)
class Ending:
    """How a job ended: its state, its metrics outcome and its terminal event."""

    state: JobState
    outcome: str
    name: str
    data: dict[str, Any]
    queue_s: float | None = None
    steps: int | None = None


def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


# ---------------------------------------------------------------------------------- inbound


def check_options(request: SolveRequest, model_id: str, model_max_steps: int,
                  max_attempts: int) -> tuple[int, int]:
    """`max_steps` and `attempts` within the model's limits, defaults filled in; a 422 naming
    the allowed range otherwise."""
    max_steps = model_max_steps if request.max_steps is None else request.max_steps
    if not 1 <= max_steps <= model_max_steps:
        raise invalid(f"max_steps must be between 1 and {model_max_steps} for {model_id}, "
                      f"got {max_steps}", ["max_steps"], allowed=[1, model_max_steps])
    attempts = 1 if request.attempts is None else request.attempts
    if not 1 <= attempts <= max_attempts:
        raise invalid(f"attempts must be between 1 and {max_attempts}, got {attempts}",
                      ["attempts"], allowed=[1, max_attempts])
    return max_steps, attempts


def search_config(request: SolveRequest, settings: Settings, slots: int,
                  can_verify: bool) -> SearchConfig | None:
    """The request's search budget within the service's cap (a 422 naming it otherwise); None
    when the task cannot check answers or the budget is 0."""
    budget = settings.search_budget_steps if request.budget_steps is None \
        else request.budget_steps
    if budget > settings.max_budget_steps:
        raise invalid(f"budget_steps must be between 0 and {settings.max_budget_steps}, got "
                      f"{budget}", ["budget_steps"], allowed=[0, settings.max_budget_steps])
    if budget == 0 or not can_verify:
        return None
    return SearchConfig(budget_steps=budget, attempts=min(settings.search_attempts, slots),
                        round_steps=settings.search_round_steps)


def puzzle_error(exc: PuzzleError, request: SolveRequest) -> ApiError:
    """A 422 whose error entry points at the offending field and, when known, the cells
    (0-based [row, column] pairs)."""
    loc = list(exc.loc)
    if loc and loc[0] == "puzzle" and request.puzzle is None:
        loc[0] = "grid"  # the task names the string field; the client sent a grid
    entry: dict[str, Any] = {"loc": ["body", *loc], "msg": exc.message}
    if exc.cells:
        entry["cells"] = [[int(r), int(c)] for r, c in exc.cells]
    return ApiError(422, "invalid-puzzle", exc.message, errors=[entry])


# --------------------------------------------------------------------------------- outbound


def step_data(task: Task, update: StepUpdate) -> dict[str, Any]:
    """Data of a `solve.step` event (without `type` / `sequence_number`, which the log adds),
    built through its documented schema."""
    return StepData(
        step=update.step,
        max_steps=update.max_steps,
        grid=task.format(update.answer),
        changed=update.changed,
        changed_cells=[int(i) for i in update.changed_cells],
        confidence=_r(update.confidence),
        # Three decimals are plenty to shade cells and keep an 81-cell event near 1 kB.
        cell_confidence=np.round(np.asarray(update.cell_confidence, dtype=np.float64),
                                 3).tolist(),
        q_halt=_r(update.q_halt),
        valid=bool(update.valid),
        attempt=update.attempt,
        elapsed_ms=_r(update.elapsed_ms, 2),
        **task.extra_step(update.answer),
    ).model_dump(exclude_unset=True)


def trajectory_entry(task: Task, update: StepUpdate) -> dict[str, Any]:
    """One element of a result's `trajectory` (the compact per-step record)."""
    return {
        "step": update.step,
        "grid": task.format(update.answer),
        "confidence": _r(update.confidence),
        "changed": update.changed,
        "q_halt": _r(update.q_halt),
        "valid": bool(update.valid),
    }


def accepted_data(record: JobHeader, queue_position: int, **extra: Any) -> dict[str, Any]:
    """Data of `solve.accepted` (ARC adds its plan as `extra`), built through its documented
    schema."""
    return AcceptedData(id=record.id, task=record.task, model=record.model,
                        queue_position=queue_position, max_steps=record.max_steps,
                        **extra).model_dump(exclude_unset=True)


def cancelled_data(record: JobHeader, reason: str) -> dict[str, Any]:
    return {"id": record.id, "status": "cancelled", "reason": reason}


def result_body(record: JobHeader, task: Task, result: JobResult,
                puzzle: np.ndarray | None = None, calibration: Calibration | None = None,
                trajectory: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The §7.1 solve result for a solved or unsolved job. A verified answer is the `solution`
    (and `grid`); any other is an `answer` (and `answer_grid`) marked `unverified`, with the
    cells that break a rule as `conflicts` when the task can name them. `confidence` is the
    model card's calibration of the raw confidence (the share of such answers that verified on
    held-out puzzles); it is absent without one, and on unverified answers, whose check already
    failed. With the job's `puzzle` (cells) it also carries the task's extra fields."""
    if result.answer is None:
        raise ValueError(f"engine reported {result.status} for {record.id} without an answer")
    solved = result.status == "solved"
    body: dict[str, Any] = {
        "id": record.id,
        "object": "solve.result",
        "task": record.task,
        "model": record.model,
        # A task with no rule check (a data-defined one) answers; it never says solved.
        "status": result.status if task.can_verify else "answered",
        "valid": bool(result.valid),
        "unverified": not solved,
        "solution" if solved else "answer": task.format(result.answer),
        "grid" if solved else "answer_grid": task.to_grid(result.answer),
        "steps_used": result.steps_used,
        "halted_early": bool(result.halted_early),
    }
    if not solved and puzzle is not None:
        body.update(_conflicts(task, puzzle, result.answer))
    if calibration is not None and solved:
        body["confidence"] = _r(calibration(result.confidence))
    body.update({
        "raw_confidence": _r(result.confidence),
        "q_halt": _r(result.q_halt),
        "attempts": result.attempts,
        "attempt": result.attempt,
        "cached": False,
        "timing": {"queue_ms": _r(result.queue_ms, 2), "compute_ms": _r(result.compute_ms, 2),
                   "total_ms": _r(result.total_ms, 2)},
    })
    if result.search is not None:
        body["search"] = result.search
    if puzzle is not None:
        body.update(task.extra_result(puzzle, result.answer))
    if record.return_steps:
        body["trajectory"] = list(trajectory or [])
    return body


def cached_body(record: JobHeader, task: Task, hit: CachedAnswer, puzzle: np.ndarray,
                attempts: int, total_ms: float,
                calibration: Calibration | None = None) -> dict[str, Any]:
    """The solve result of a cache hit: a verified answer of a symmetric twin, no compute."""
    result = JobResult(record.id, "solved", hit.answer, True, hit.steps_used,
                       hit.halted_early, hit.confidence, hit.q_halt, attempt=0,
                       attempts=attempts, queue_ms=0.0, compute_ms=0.0, total_ms=total_ms)
    return {**result_body(record, task, result, puzzle, calibration), "cached": True}


def _conflicts(task: Task, puzzle: np.ndarray, answer: np.ndarray) -> dict[str, Any]:
    """`conflicts`: the answer's cells that break a rule, 0-based [row, column] pairs; nothing
    when the task cannot tell cell by cell."""
    mask = task.conflicts(puzzle, answer)
    if mask is None:
        return {}
    rows, cols = np.nonzero(np.asarray(mask).reshape(task.grid_shape))
    return {"conflicts": [[int(r), int(c)] for r, c in zip(rows, cols, strict=True)]}


def failure_error(result: JobResult, retry_after_s: int) -> tuple[ApiError, str]:
    """The problem for a job that ended without an answer, and its metrics outcome."""
    if result.status == "timeout":
        return timeout(f"the deadline passed after {result.steps_used} of the job's steps "
                       f"({result.total_ms:.0f} ms)"), "timeout"
    if result.error == SHUTDOWN_REASON:
        return shutdown_error(retry_after_s), "rejected"
    return internal(f"inference failed: {result.error or 'unknown error'}"), "error"


def shutdown_error(retry_after_s: int) -> ApiError:
    """The 503 of a job the service could not finish before it stopped."""
    return unavailable(SHUTDOWN_REASON, "the service shut down before the job finished",
                       retry_after_s)


# ---------------------------------------------------------------------------------- endings


def completed(body: dict[str, Any], queue_s: float | None = None) -> Ending:
    """A job that answered (`body`: a solve or ARC result)."""
    status = str(body.get("status", "unsolved"))
    outcome = status if status in ("solved", "unsolved") else "unsolved"
    return Ending("succeeded", outcome, "solve.completed", body, queue_s,
                  body.get("steps_used"))


def failed(record: JobHeader, error: ApiError, outcome: str, problem_base_uri: str,
           steps: int | None = None) -> Ending:
    """A job that ended with `error` (its problem body is the terminal event)."""
    return Ending("failed", outcome, "solve.failed",
                  error.to_problem(record.request_id, problem_base_uri), steps=steps)


def cancelled(record: JobHeader, reason: str) -> Ending:
    return Ending("cancelled", "cancelled", "solve.cancelled", cancelled_data(record, reason))


def ending_of(record: JobHeader, task: Task, result: JobResult, settings: Settings, *,
              puzzle: np.ndarray | None, calibration: Calibration | None,
              trajectory: list[dict[str, Any]]) -> Ending:
    """The engine's final word on a job as an `Ending`."""
    if result.status == "cancelled" and result.error != SHUTDOWN_REASON:
        return cancelled(record, result.error or "cancelled")
    if result.status in ("solved", "unsolved"):
        try:
            body = result_body(record, task, result, puzzle, calibration, trajectory)
        except Exception:
            log.exception("could not format the result of %s", record.id)
            return failed(record, internal(), "error", settings.problem_base_uri)
        return completed(body, result.queue_ms / 1000)
    error, outcome = failure_error(result, settings.retry_after_s)
    if outcome == "error":
        log.error("job %s (request %s) failed: %s", record.id, record.request_id, result.error)
    return failed(record, error, outcome, settings.problem_base_uri, result.steps_used)


def ending_from_event(name: str, data: dict[str, Any]) -> Ending:
    """A terminal event read back (from Redis) as an `Ending`."""
    if name == "solve.completed":
        timing = data.get("timing") or {}
        return completed(data, float(timing.get("queue_ms", 0.0)) / 1000)
    if name == "solve.cancelled":
        return Ending("cancelled", "cancelled", name, data)
    outcome = {504: "timeout", 503: "rejected"}.get(int(data.get("status", 500)), "error")
    return Ending("failed", outcome, name, data)


def outcome_of(error: ApiError) -> str:
    """The metrics outcome of a job that failed with `error`."""
    return {504: "timeout", 503: "rejected"}.get(error.status, "error")

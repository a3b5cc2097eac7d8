"""Typed views of the service's JSON: solve results, step events, jobs and models.

Each keeps the full JSON object in `raw`, so fields added by newer servers stay reachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SolveResult:
    """The answer to a solve. `status` is "solved" only when the answer was verified; then it is
    `solution` (and `grid`). Otherwise `solution` is None and the model's unverified attempt is
    `answer` (and `answer_grid`), with the cells that break a rule in `conflicts`; "answered"
    means the task has no rules check at all (a task defined by data without one). `output` is
    a data-defined task's answer in its own symbols (rows, a list or a label), else None.

    `confidence` is the model's calibrated confidence (the share of such answers that verified
    on held-out puzzles), None when the model has no calibration or the answer is unverified;
    `raw_confidence` is the model's own mean top probability, which is not a probability of being
    right."""

    id: str
    task: str
    model: str
    status: str
    solution: str | None
    grid: list[list[int]] | None
    answer: str | None
    answer_grid: list[list[int]] | None
    conflicts: list[list[int]]
    valid: bool
    steps_used: int
    halted_early: bool
    confidence: float | None
    raw_confidence: float
    q_halt: float
    attempts: int
    attempt: int
    timing_ms: float
    raw: dict[str, Any] = field(repr=False, compare=False)
    output: Any = None

    @property
    def solved(self) -> bool:
        return self.status == "solved"

    @property
    def unverified(self) -> bool:
        return not self.solved

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SolveResult:
        return cls(id=data["id"], task=data["task"], model=data["model"],
                   status=data["status"], solution=data.get("solution"), grid=data.get("grid"),
                   answer=data.get("answer"), answer_grid=data.get("answer_grid"),
                   conflicts=data.get("conflicts") or [], valid=data["valid"],
                   steps_used=data["steps_used"], halted_early=data["halted_early"],
                   confidence=data.get("confidence"), raw_confidence=data["raw_confidence"],
                   q_halt=data["q_halt"], attempts=data["attempts"], attempt=data["attempt"],
                   timing_ms=data["timing"]["total_ms"], raw=data, output=data.get("output"))


@dataclass(frozen=True)
class StepEvent:
    """One supervision step: the grid so far, what changed, and how sure the model is."""

    step: int
    max_steps: int
    grid: str
    changed: int
    changed_cells: list[int]
    confidence: float
    cell_confidence: list[float]
    q_halt: float
    valid: bool
    attempt: int
    elapsed_ms: float
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepEvent:
        return cls(step=data["step"], max_steps=data["max_steps"], grid=data["grid"],
                   changed=data["changed"], changed_cells=data["changed_cells"],
                   confidence=data["confidence"], cell_confidence=data["cell_confidence"],
                   q_halt=data["q_halt"], valid=data["valid"], attempt=data["attempt"],
                   elapsed_ms=data["elapsed_ms"], raw=data)


@dataclass(frozen=True)
class Job:
    """A job made by `submit`: its state and, once finished, its result or error."""

    id: str
    status: str
    task: str
    model: str
    created_at: str
    finished_at: str | None
    result: SolveResult | None
    error: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        result = data.get("result")
        return cls(id=data["id"], status=data["status"], task=data["task"],
                   model=data["model"], created_at=data["created_at"],
                   finished_at=data.get("finished_at"),
                   result=SolveResult.from_json(result) if result else None,
                   error=data.get("error"), raw=data)


@dataclass(frozen=True)
class ModelInfo:
    """A loaded model: which task, how many steps at most, where it runs."""

    id: str
    name: str
    version: int
    task: str
    default: bool
    max_steps: int
    device: str
    parameters: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(id=data["id"], name=data["name"], version=data["version"],
                   task=data["task"], default=data["default"], max_steps=data["max_steps"],
                   device=data["device"], parameters=data["parameters"], raw=data)

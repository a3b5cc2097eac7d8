"""Request and response bodies of the HTTP API (pydantic), also the source of `/openapi.json`.

Range checks that depend on the chosen checkpoint (`max_steps`, `attempts`) happen in the service,
which knows the limits and names them in its 422 answers; the schemas check shape and types.
Numbers and flags in requests are strict: `true` is no integer and `"16"` no number, so a
client's type mistake is a 422 naming the field rather than a guess.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from app.task_models import TaskResult

Halting = Literal["auto", "never"]
EXAMPLE_PUZZLE = (
    "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
)


class SolveRequest(BaseModel):
    """One puzzle and how to solve it. Send exactly one of `puzzle` and `grid`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"puzzle": EXAMPLE_PUZZLE, "max_steps": 16, "halting": "auto"}]})

    puzzle: str | None = Field(None, description="compact string; Sudoku: 81 cells, '.' or '0' "
                                                 "blank, whitespace and | - + ignored; maze: 30 "
                                                 "lines of 30 characters or one 900-character "
                                                 "line, '#' wall, ' ' open, 'S' start, 'G' goal")
    grid: list[Any] | None = Field(None, description="row-major nested list of cells (Sudoku: 0 "
                                                     "blank; maze: characters or codes 1-4)")
    model: str | None = Field(None, description="model id 'name@version' or name; default per "
                                                "task")
    max_steps: StrictInt | None = Field(None, description="1 .. the checkpoint's max supervision "
                                                          "steps (its default)")
    halting: Halting | None = Field(None, description="auto (default): stop early only once the "
                                                      "answer verifies and the halting head "
                                                      "agrees or the answer stopped changing "
                                                      "(tasks that cannot check answers: when "
                                                      "the halting head says so); never: run "
                                                      "max_steps, as the paper evaluates")
    early_stop: StrictBool | None = Field(None, description="older spelling of halting: true = "
                                                            "auto, false = never")
    attempts: StrictInt | None = Field(None, description="parallel attempts (test-time search), "
                                                         "1 .. TRM_MAX_ATTEMPTS")
    latent_noise: StrictFloat = Field(0.0, ge=0.0, le=1.0,
                                      description="with attempts > 1: standard deviation of "
                                                  "noise added to the starting latent z of every "
                                                  "attempt but the first, so they explore "
                                                  "different trajectories besides their "
                                                  "symmetric views")
    budget_steps: StrictInt | None = Field(
        None, ge=0, description="verified search: slot-steps (supervision steps x attempts) the "
                                "service may spend when the first pass does not verify, in "
                                "rounds of symmetric attempts that keep the model's most "
                                "confident rule-abiding cells; 0 = the single pass only; "
                                "default TRM_SEARCH_BUDGET_STEPS, at most TRM_MAX_BUDGET_STEPS")
    seed: StrictInt | None = Field(None, ge=0, le=2**31 - 1,
                                   description="seeds the attempts' symmetries and noise: "
                                               "identical requests give identical answers "
                                               "(default 0)")
    return_steps: StrictBool = Field(False, description="include the per-step trajectory")
    stream: StrictBool = Field(False, description="answer with server-sent events (as does "
                                                  "Accept: text/event-stream)")
    timeout_ms: StrictInt | None = Field(None, gt=0, description="deadline; may only lower the "
                                                                 "server's")

    @field_validator("puzzle", mode="before")
    @classmethod
    def _puzzle_is_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise ValueError("puzzle takes a string; send a nested list of cells as 'grid' "
                             "instead")
        return value

    @model_validator(mode="after")
    def _check(self) -> SolveRequest:
        if (self.puzzle is None) == (self.grid is None):
            raise ValueError("send exactly one of 'puzzle' or 'grid'")
        if self.halting is not None and self.early_stop is not None \
                and (self.halting == "auto") != self.early_stop:
            raise ValueError("'halting' and 'early_stop' disagree; send one of them")
        return self

    @property
    def raw_puzzle(self) -> Any:
        return self.puzzle if self.puzzle is not None else self.grid

    @property
    def halting_mode(self) -> Halting:
        if self.halting is not None:
            return self.halting
        if self.early_stop is not None:
            return "auto" if self.early_stop else "never"
        return "auto"


class JobRequest(SolveRequest):
    """A solve request for the jobs API, which names its task in the body."""

    task: str = Field(description="task name, e.g. sudoku")


class Timing(BaseModel):
    queue_ms: float
    compute_ms: float
    total_ms: float


class TrajectoryStep(BaseModel):
    step: int
    grid: str
    confidence: float
    changed: int
    q_halt: float
    valid: bool


class SolveResult(BaseModel):
    """The answer to a solve, also the data of `solve.completed` and a job's `result`.

    A verified answer comes as `solution` and `grid`; an answer that fails the rules check comes
    as `answer` and `answer_grid`, with `unverified: true` and the cells that break a rule in
    `conflicts`, so it can never be mistaken for a solution. An answer never changes a given."""

    id: str
    object: Literal["solve.result"] = "solve.result"
    task: str
    model: str
    status: Literal["solved", "unsolved", "answered"] = Field(
        description="solved: the answer keeps every given and passes the task's rules check; "
                    "unsolved: it does not (still a 200 answer); answered: the task has no "
                    "rules check (a data-defined task), so the answer is the model's, unverified")
    valid: bool = Field(description="the answer passes the rules check (status == solved)")
    unverified: bool = Field(description="true when the answer failed the rules check: it is "
                                         "under `answer`, never `solution`")
    solution: str | None = Field(None, description="solved only: the verified answer, compact "
                                                   "(Sudoku: 81 digits)")
    grid: list[list[int]] | None = Field(None, description="solved only: `solution` as rows")
    answer: str | None = Field(None, description="unsolved only: the model's unverified answer "
                                                 "(givens kept), compact")
    answer_grid: list[list[int]] | None = Field(None, description="unsolved only: `answer` as "
                                                                  "rows")
    conflicts: list[list[int]] | None = Field(
        None, description="unsolved only: cells of `answer` that break a rule (blank, a repeated "
                          "digit in a row, column or box), as 0-based [row, column] pairs; "
                          "absent for tasks that cannot tell cell by cell (mazes: see `path`)")
    steps_used: int
    halted_early: bool
    confidence: float | None = Field(
        None, description="solved only, and only when the model card has a calibration (`trm "
                          "calibrate`): the share of answers with this raw confidence that "
                          "verified on held-out puzzles; absent otherwise")
    raw_confidence: float = Field(
        description="mean over the filled cells of the model's top probability; saturates "
                    "near 1.0 for right and wrong answers alike, so not a probability of being "
                    "right")
    q_halt: float = Field(description="the halting head's output after the last step (its own "
                                      "uncalibrated estimate that the answer is done)")
    attempts: int
    attempt: int = Field(description="which attempt produced the answer")
    cached: bool = False
    timing: Timing
    trajectory: list[TrajectoryStep] | None = None
    # Maze results only (absent for other tasks).
    path: list[list[int]] | None = Field(
        None, description="maze: the answer's path as 0-based [row, column] pairs: S to G in "
                          "order when path_complete, otherwise the 'o' cells in row-major order")
    path_complete: bool | None = Field(
        None, description="maze: the 'o' cells, S and G form one unbroken chain from S to G")
    path_length: int | None = Field(
        None, description="maze: steps along the drawn path when complete, else null")
    shortest_length: int | None = Field(
        None, description="maze: steps on a shortest route of the puzzle (breadth-first search)")
    verifies: bool | None = Field(
        None, description="maze: the answer is the puzzle with one shortest path drawn (the "
                          "task's check, as `valid`)")
    # Data-defined tasks only.
    output: Any = Field(
        None, description="a data-defined task: the answer in the task's own symbols (rows of "
                          "symbols for a grid, a list for a sequence, the label)")


class AcceptedData(BaseModel):
    """Data of the `solve.accepted` event, as `app.payloads` builds it (unknown fields are an
    error, so what is sent cannot drift from what is documented)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    task: str
    model: str
    queue_position: int
    max_steps: int
    mode: str | None = Field(None, description="arc only: known (trained versions) or adapted")
    versions: int | None = Field(None, description="arc only: versions to predict and vote over")
    test_inputs: int | None = Field(None, description="arc only: test inputs of the task")


class AcceptedEvent(AcceptedData):
    """A `solve.accepted` event's data as sent: the accepted data plus its SSE bookkeeping."""

    type: Literal["solve.accepted"] = "solve.accepted"
    sequence_number: int


class StepData(BaseModel):
    """Data of one `solve.step` event: what one supervision step did, as `app.payloads` builds
    it (unknown fields are an error, so what is sent cannot drift from what is documented)."""

    model_config = ConfigDict(extra="forbid")
    step: int
    max_steps: int
    grid: str = Field(description="the answer so far, givens kept: in progress, so unverified "
                                  "unless `valid`")
    changed: int
    changed_cells: list[int] = Field(description="flat indices that changed this step")
    confidence: float = Field(description="raw: mean top probability over the filled cells, as "
                                          "a result's raw_confidence (not calibrated)")
    cell_confidence: list[float] = Field(description="per-cell max probability, 3 decimals")
    q_halt: float
    valid: bool
    attempt: int = Field(description="the attempt whose answer this is")
    elapsed_ms: float
    path_cells: int | None = Field(None, description="maze only: 'o' cells drawn so far")
    path_length: int | None = Field(
        None, description="maze only: steps along the drawn path once it joins S to G, else null")


class StepEvent(StepData):
    """A `solve.step` event's data as sent: the step data plus its SSE bookkeeping."""

    type: Literal["solve.step"] = "solve.step"
    sequence_number: int


class ErrorEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str
    errors: list[ErrorEntry] | None = None
    retry_after_s: int | None = None


# A job's result is the body its task's solve route answers with; both carry `object`.
JobResult = Annotated[SolveResult | TaskResult, Field(discriminator="object")]


class JobObject(BaseModel):
    id: str
    object: Literal["job"] = "job"
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    task: str
    model: str
    created_at: str
    finished_at: str | None = None
    result: JobResult | None = Field(
        None, description="once succeeded: the body the task's solve route answers with "
                          "(arc: an ARC result), told apart by `object`")
    error: Problem | None = None


class Batching(BaseModel):
    slots: int
    max_queue: int


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["model"] = "model"
    name: str
    version: int
    task: str
    default: bool
    checkpoint_sha256: str
    seq_len: int
    vocab_size: int
    max_steps: int
    device: str
    precision: str = Field(description="the arithmetic its steps run in: the weights' dtype, "
                                       "then any autocast, e.g. float32+autocast-bfloat16")
    parameters: int
    loaded: bool
    warmed: bool
    batching: Batching
    evaluation: Any | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


# Problems are sent as application/problem+json, so the document gives their schema there (a
# `model` here would file it under application/json, which is never sent). Problem is among the
# components through JobObject.error.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": HTTPStatus(status).phrase,
             "content": {"application/problem+json": {
                 "schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status in (400, 401, 404, 408, 409, 413, 415, 421, 422, 500, 503, 504)
}

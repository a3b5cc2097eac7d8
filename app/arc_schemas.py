"""Request and response bodies of the ARC endpoints (`POST /v1/solve/arc`, `POST /v1/jobs/arc`).

The request is an ARC task as the ARC-AGI files write it (`train` pairs and `test` inputs) plus
options; grids are checked by the service, which names the pair, row and cell at fault.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

EXAMPLE_TASK: dict[str, Any] = {"train": [{"input": [[1, 0], [0, 0]], "output": [[0, 1], [0, 0]]},
                          {"input": [[0, 0], [2, 0]], "output": [[0, 0], [0, 2]]}],
                "test": [{"input": [[3, 0], [0, 0]]}]}


class ArcPair(BaseModel):
    """One demonstration: an input grid and its output grid (rows of colours 0-9)."""

    model_config = ConfigDict(extra="ignore")
    input: list[Any]
    output: list[Any]


class ArcTestInput(BaseModel):
    """One test input; an `output` (as in solution files) is ignored."""

    model_config = ConfigDict(extra="ignore")
    input: list[Any]


class ArcSolveRequest(BaseModel):
    """An ARC task and how to answer it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_TASK]})

    train: list[ArcPair] = Field(description="demonstration pairs, at least one, at most "
                                             "TRM_ARC_MAX_PAIRS")
    test: list[ArcTestInput] = Field(description="test inputs to answer, at least one, at most "
                                                 "TRM_ARC_MAX_TEST_INPUTS")
    model: str | None = Field(None, description="model id 'name@version' or name; default per "
                                                "task")
    max_steps: StrictInt | None = Field(None, description="supervision steps per prediction, "
                                                          "1 .. the checkpoint's maximum (its "
                                                          "default)")
    halting: Literal["auto", "never"] = Field(
        "never", description="never: every prediction runs max_steps, as the official "
                             "evaluation does; auto: stop when the halting head says so")
    versions: StrictInt | None = Field(None, ge=1, description="augmented versions voted over "
                                                               "per test input (default "
                                                               "TRM_ARC_VERSIONS)")
    adapt_budget_s: StrictFloat | None = Field(
        None, gt=0, description="seconds for test-time adaptation of a task the model never "
                                "saw (capped by TRM_ARC_ADAPT_MAX_BUDGET_S)")
    stream: StrictBool = Field(False, description="answer with server-sent events (as does "
                                                  "Accept: text/event-stream)")
    timeout_ms: StrictInt | None = Field(None, gt=0, description="deadline; may only lower the "
                                                                 "server's")


class ArcAttempt(BaseModel):
    grid: list[list[int]]
    votes: int = Field(description="versions whose answer, mapped back, was this grid")
    confidence: float = Field(description="mean sigmoid halting probability of those versions")


class ArcTestAnswer(BaseModel):
    attempts: list[ArcAttempt] = Field(description="at most 2, best first")
    predictions: int = Field(description="versions that answered this test input")
    vote_counts: list[int] = Field(description="votes of every candidate, best first; they "
                                               "sum to predictions minus empty answers")


class ArcAdaptReport(BaseModel):
    steps: int
    seconds: float
    demo_exact: float = Field(description="fraction of demonstration examples answered "
                                          "exactly by their last finished run")
    loss: float | None = Field(description="mean per-example loss of the last step; null "
                                              "when no step finished")
    examples: int
    versions: int
    stopped: str
    optimizer: str
    cached: bool = Field(description="rows reused from an earlier request for the same task")


class ArcTiming(BaseModel):
    adapt_ms: float = Field(description="fitting rows, 0 for known or cached tasks")
    compute_ms: float = Field(description="predicting every version, queueing included")
    total_ms: float


class ArcResult(BaseModel):
    """The answer to an ARC task, also the data of `solve.completed` and a job's `result`."""

    id: str
    object: Literal["arc.result"] = "arc.result"
    task: Literal["arc"] = "arc"
    model: str
    status: Literal["answered", "unanswered"] = Field(
        description="unanswered: some test input got no decodable grid from any version")
    mode: Literal["known", "adapted", "augmented"] = Field(
        description="known: the checkpoint trained on this task (matched by its "
                    "demonstrations); adapted: new rows fitted at test time; augmented: a "
                    "model without puzzle embedding, voting over symmetric views")
    task_id: str | None = Field(description="the checkpoint's name for a known task")
    versions: int
    steps_used: int
    test: list[ArcTestAnswer]
    adapt: ArcAdaptReport | None = None
    timing: ArcTiming

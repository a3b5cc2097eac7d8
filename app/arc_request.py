"""An ARC request turned into what the service runs: the task's grids (checked, with 422s that
name the pair, row and cell at fault) and a plan of the versions to vote over.

How a task is answered depends on the checkpoint: one that trained on the task (its
demonstrations' digest is among the sidecar's `tasks`) votes over the task's trained versions;
one with a puzzle embedding adapts new rows to any other task; one without a puzzle embedding
votes over symmetric views with the blank row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from app.arc_schemas import ArcSolveRequest
from app.errors import ApiError, invalid
from app.registry import ModelEntry
from app.settings import Settings
from trm_core.tasks.arc.adapt import draw_symmetries
from trm_core.tasks.arc.grids import ArcSymmetry, encode, parse_grid
from trm_core.tasks.arc.identifiers import IdentifierMap, demos_digest
from trm_core.tasks.base import PuzzleError

Mode = Literal["known", "adapted", "augmented"]


@dataclass
class ArcGrids:
    """A parsed task: demonstration pairs, test inputs and the demonstrations' digest."""

    demos: list[tuple[np.ndarray, np.ndarray]]
    tests: list[np.ndarray]
    digest: str

    @property
    def seed(self) -> int:
        """A seed fixed by the task's content, so a task always gets the same versions."""
        return int(self.digest[:8], 16)


@dataclass
class ArcPlan:
    """What to run: `versions` symmetries (filled after fitting in "adapted" mode), each with a
    table row (`puzzle_ids`) or fitted vectors (`rows`)."""

    mode: Mode
    versions: int
    max_steps: int
    halting: Literal["auto", "never"]
    task_id: str | None = None
    symmetries: list[ArcSymmetry] = field(default_factory=list)
    puzzle_ids: list[int] = field(default_factory=list)
    rows: np.ndarray | None = None  # (versions, puzzle_emb_dim) float32, adapted mode

    def puzzles(self, grids: ArcGrids) -> list[tuple[int, int, np.ndarray]]:
        """(version, test input, (900,) int8 canvas) of every prediction to make."""
        return [(v, j, encode(symmetry.apply_grid(test)).astype(np.int8))
                for v, symmetry in enumerate(self.symmetries)
                for j, test in enumerate(grids.tests)]

    def job_fields(self, version: int) -> dict[str, Any]:
        """The engine `Job` fields that pick version `version`'s puzzle row."""
        if self.rows is not None:
            return {"puzzle_vector": self.rows[version]}
        return {"puzzle_id": self.puzzle_ids[version] if self.puzzle_ids else 0}


# -------------------------------------------------------------------------------- parsing
def parse_task(request: ArcSolveRequest) -> ArcGrids:
    """The request's grids; a 422 naming the first problem."""
    if not request.train:
        raise _task_error("the task has no demonstration pairs; 'train' needs at least one "
                          "{input, output} pair", ["train"])
    if not request.test:
        raise _task_error("the task has no test inputs; 'test' needs at least one {input}",
                          ["test"])
    demos = [(_grid(pair.input, ["train", i, "input"]), _grid(pair.output, ["train", i, "output"]))
             for i, pair in enumerate(request.train)]
    tests = [_grid(item.input, ["test", j, "input"]) for j, item in enumerate(request.test)]
    return ArcGrids(demos, tests, demos_digest(demos))


def _grid(raw: Any, loc: list[str | int]) -> np.ndarray:
    try:
        return parse_grid(raw)
    except PuzzleError as exc:
        where = f"{loc[0]}[{loc[1]}].{loc[2]}"
        entry: dict[str, Any] = {"loc": ["body", *loc, *exc.loc[1:]], "msg": exc.message}
        if exc.cells:
            entry["cells"] = [[int(r), int(c)] for r, c in exc.cells]
        raise ApiError(422, "invalid-puzzle", f"{where}: {exc.message}",
                       errors=[entry]) from None


def _task_error(detail: str, loc: list[str | int]) -> ApiError:
    return ApiError(422, "invalid-puzzle", detail, errors=[{"loc": ["body", *loc],
                                                            "msg": detail}])


# ------------------------------------------------------------------------------- planning
@dataclass
class KnownTasks:
    """A checkpoint's sidecar indexed for requests: digest -> task id -> rows."""

    by_digest: dict[str, str]
    rows: dict[str, list[int]]
    identifiers: IdentifierMap

    @classmethod
    def of(cls, identifiers: IdentifierMap) -> KnownTasks:
        return cls(identifiers.task_by_digest(), identifiers.rows_of(), identifiers)


def check_limits(request: ArcSolveRequest, entry: ModelEntry, settings: Settings
                 ) -> tuple[int, int]:
    """(versions, max_steps) with defaults filled in; a 422 naming the allowed range, or the
    limit on pairs and test inputs (checked before any grid is parsed)."""
    _check_count(len(request.train), settings.arc_max_pairs, "train", "demonstration pairs",
                 "TRM_ARC_MAX_PAIRS")
    _check_count(len(request.test), settings.arc_max_test_inputs, "test", "test inputs",
                 "TRM_ARC_MAX_TEST_INPUTS")
    versions = settings.arc_versions if request.versions is None else request.versions
    if not 1 <= versions <= settings.arc_max_versions:
        raise invalid(f"versions must be between 1 and {settings.arc_max_versions}, got "
                      f"{versions}", ["versions"], allowed=[1, settings.arc_max_versions])
    max_steps = entry.max_steps if request.max_steps is None else request.max_steps
    if not 1 <= max_steps <= entry.max_steps:
        raise invalid(f"max_steps must be between 1 and {entry.max_steps} for {entry.id}, got "
                      f"{max_steps}", ["max_steps"], allowed=[1, entry.max_steps])
    return versions, max_steps


def _check_count(count: int, limit: int, field: str, what: str, setting: str) -> None:
    if count > limit:
        raise invalid(f"{field} has {count} {what}; at most {limit} are allowed ({setting})",
                      [field], limit=limit)


def check_fit_size(plan: ArcPlan, grids: ArcGrids, max_examples: int) -> None:
    """A 422 when adapting would fit more examples (demonstration pairs x versions) than
    `max_examples`: a fit holds every example's carry at once."""
    pairs = len(grids.demos)
    examples = pairs * plan.versions
    if plan.mode != "adapted" or examples <= max_examples:
        return
    most = max_examples // pairs
    remedy = f"ask for at most {most} versions" if most else "send fewer demonstration pairs"
    raise invalid(f"adapting this task would fit {pairs} demonstration pairs x {plan.versions} "
                  f"versions = {examples} examples; at most {max_examples} are allowed "
                  f"(TRM_ARC_MAX_EXAMPLES): {remedy}", ["versions" if most else "train"],
                  limit=max_examples)


def plan_request(request: ArcSolveRequest, entry: ModelEntry, grids: ArcGrids,
                 known: KnownTasks | None, versions: int, max_steps: int) -> ArcPlan:
    """Known task, adaptation, or plain symmetric voting, as the checkpoint allows."""
    plan = ArcPlan("augmented", versions, max_steps, request.halting)
    task_id = None if known is None else known.by_digest.get(grids.digest)
    if known is not None and task_id is not None and task_id in known.rows:
        rows = known.rows[task_id][:versions]
        refs = [known.identifiers.versions[row] for row in rows]
        plan.mode, plan.task_id, plan.puzzle_ids = "known", task_id, rows
        plan.symmetries = [ref.symmetry for ref in refs if ref is not None]
    elif entry.checkpoint.config.puzzle_emb_dim > 0:
        plan.mode = "adapted"  # symmetries and rows come with the fit
    else:
        plan.symmetries = draw_symmetries(grids.demos, grids.tests, versions,
                                          np.random.default_rng(grids.seed))
    plan.versions = len(plan.symmetries) or versions
    return plan

"""ARC's job kind: an ARC request's work (its grids, its plan and its adaptation budget), put on
the wire for broker workers, and the `ArcRun` that answers it wherever it runs.

The service admits and plans (`app.arc_service`); a runner, or a broker worker that took the
job from its model's queue, starts the run through `ArcJobKind`, which keeps the host's adapted
rows (`ArcAdapter`), so a task adapted once on a host is answered from its cache there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.arc_adapt import ArcAdapter
from app.arc_request import ArcGrids, ArcPlan
from app.arc_run import ArcRun
from app.settings import Settings
from app.task_runs import JobKind, RunContext
from trm_core.tasks.arc.grids import ArcSymmetry

KIND = "arc"


@dataclass
class ArcWork:
    """One ARC request: adapt rows when the task is new, predict every version, vote."""

    grids: ArcGrids
    plan: ArcPlan
    adapt_budget_s: float


class ArcJobKind(JobKind):
    """ARC's adapt-then-vote as a job kind; one per host (its adapted-rows cache)."""

    name = KIND

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.adapter = ArcAdapter(settings)

    def encode(self, spec: Any) -> str:
        assert isinstance(spec, ArcWork)
        return json.dumps(work_fields(spec), separators=(",", ":"))

    def decode(self, text: str) -> ArcWork:
        return work_of(json.loads(text))

    def start(self, context: RunContext, spec: Any) -> ArcRun:
        assert isinstance(spec, ArcWork)
        return ArcRun(context, self.adapter, spec, self.settings.retry_after_s)


def work_fields(work: ArcWork) -> dict[str, Any]:
    """The work as JSON-ready fields (a plan is sent before any fit, so it has no rows)."""
    grids, plan = work.grids, work.plan
    assert plan.rows is None, "fitted rows stay on the host that fitted them"
    return {
        "demos": [[i.tolist(), o.tolist()] for i, o in grids.demos],
        "tests": [t.tolist() for t in grids.tests], "digest": grids.digest,
        "mode": plan.mode, "versions": plan.versions, "max_steps": plan.max_steps,
        "halting": plan.halting, "task_id": plan.task_id, "puzzle_ids": plan.puzzle_ids,
        "symmetries": [[s.dihedral_id, s.colour_map.tolist()] for s in plan.symmetries],
        "adapt_budget_s": work.adapt_budget_s,
    }


def work_of(fields: dict[str, Any]) -> ArcWork:
    """The inverse of `work_fields`."""
    demos = [(_grid(i), _grid(o)) for i, o in fields["demos"]]
    grids = ArcGrids(demos, [_grid(t) for t in fields["tests"]], fields["digest"])
    plan = ArcPlan(fields["mode"], int(fields["versions"]), int(fields["max_steps"]),
                   fields["halting"], fields["task_id"],
                   [ArcSymmetry(d, m) for d, m in fields["symmetries"]],
                   [int(p) for p in fields["puzzle_ids"]])
    return ArcWork(grids, plan, float(fields["adapt_budget_s"]))


def _grid(rows: list[list[int]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.int64)

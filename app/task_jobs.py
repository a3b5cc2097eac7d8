"""The one place app/ maps a task's name to its own job kind (`app.task_runs.JobKind`): work
that is not one puzzle, such as ARC's adapt-then-vote. Runners and broker workers build one
instance of each per host and start runs through it; tasks that solve puzzle strings need
nothing here.
"""

from __future__ import annotations

from app.arc_job import ArcJobKind
from app.settings import Settings
from app.task_runs import JobKind, JobKindFactory

JOB_KINDS: dict[str, JobKindFactory] = {ArcJobKind.name: ArcJobKind}


def job_kinds(settings: Settings) -> dict[str, JobKind]:
    """One instance of every job kind, for a host (a runner or a broker worker)."""
    return {name: make(settings) for name, make in JOB_KINDS.items()}

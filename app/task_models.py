"""The one place app/'s generic pydantic models get their task-owned parts: the settings groups
of tasks with settings of their own (`Settings` inherits `TaskSettings`) and the result bodies of
tasks with a route of their own (a job's `result` may be a `TaskResult`). Only pydantic models
are imported here, so `app.settings` and `app.schemas` can build on it.
"""

from __future__ import annotations

from app.arc_schemas import ArcResult
from app.arc_settings import ArcSettings


class TaskSettings(ArcSettings):
    """Every task's settings group (one base class per task with settings of its own)."""


TaskResult = ArcResult  # a union of the tasks' own result bodies, as more tasks bring one
